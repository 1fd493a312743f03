"""The quality suite: one model scored on FER+ validation and on faces from other domains, in one table.

A FER+ model is only as good as it is off FER+: film stills (SFEW 2.0) and posed faces (CK+) are framed, lit
and acted differently. `SUITE` names the sets (relative to a data root such as `../shared/data`), `score_suite`
scores a model on each one that is present with the evaluation path (`predict_logits`: the same decoding and
resize as training) and `format_suite` prints accuracy, macro-F1 and per-class recall, a row per set.

The cross-domain sets are for measuring only: nothing here may feed model selection, calibration or training.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ..data.labels import CLASSES
from .metrics import classification_metrics, confusion
from .scoring import predict_logits, softmax

logger = logging.getLogger(__name__)

# name -> (folder under the data root, split); an imagefolder loads as a single 'train' split
SUITE = {
    "ferplus_val": ("ferplus", "validation"),
    "sfew_dev": ("crossdomain_dev/sfew", "train"),
    "ckplus_dev": ("crossdomain_dev/ckplus48", "train"),
}


def suite_sets(data_root: str, names=None) -> dict[str, tuple[str, str]]:
    """`{name: (folder, split)}` of the suite's sets found under `data_root` (absent ones are left out, said)."""
    found = {}
    for name in names or SUITE:
        if name not in SUITE:
            raise ValueError(f"unknown set {name!r}; the suite has {list(SUITE)}.")
        folder = os.path.join(data_root, SUITE[name][0])
        if os.path.isdir(folder):
            found[name] = (folder, SUITE[name][1])
        else:
            logger.warning("%s: no folder %s; left out of the suite.", name, folder)
    return found


def load_set(folder: str, split: str):
    """The harmonised `split` of one folder (columns image, label, source)."""
    from ..data.sources import load_sources  # datasets is a heavy import: only when a set is loaded

    sources = load_sources([folder])
    (_name, dd), = sources.items()
    if split not in dd:
        raise ValueError(f"{folder}: no {split!r} split (splits: {list(dd)}).")
    return dd[split].select_columns(["image", "label", "source"])


def set_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, macro-F1 over the classes the set holds, per-class recall, the confusion matrix (rows: true class,
    columns: predicted, in `CLASSES` order) and the number of images."""
    preds = probs.argmax(axis=1)
    m = classification_metrics(labels, preds)
    keep = ("accuracy", "macro_f1", "balanced_accuracy")
    out = {k: m[k] for k in keep}
    out["recall"] = {c: m[f"recall_{c}"] for c in CLASSES if m[f"support_{c}"]}
    out["confusion"] = confusion(labels, preds).tolist()
    out["n_images"] = len(labels)
    return out


def score_suite(model, sets: dict[str, tuple[str, str]], batch_size: int = 256, tta: str | None = None,
                temperature: float = 1.0) -> dict[str, dict]:
    """`{set name: set_metrics}` for `model` (a loaded image classifier) on each set."""
    results = {}
    for name, (folder, split) in sets.items():
        data = load_set(folder, split)
        pred = predict_logits(model, data, batch_size, tta=tta, desc=name)
        labels = np.asarray(data.with_format(None)["label"])[pred.kept]
        probs = softmax(pred.logits, temperature)
        if pred.flip_logits is not None:
            probs = (probs + softmax(pred.flip_logits, temperature)) / 2
        results[name] = {**set_metrics(labels, probs), "n_skipped": int(pred.n_skipped)}
    return results


def flat_metrics(results: dict[str, dict], prefix: str = "") -> dict[str, float]:
    """`{<prefix><set>_accuracy, ..._macro_f1, ..._recall_<class>}`: the suite as flat entries (all_results.json)."""
    out = {}
    for name, m in results.items():
        out[f"{prefix}{name}_accuracy"] = m["accuracy"]
        out[f"{prefix}{name}_macro_f1"] = m["macro_f1"]
        out.update({f"{prefix}{name}_recall_{c}": r for c, r in m["recall"].items()})
    return out


def format_suite(results: dict[str, dict]) -> str:
    """One markdown table: a row per set, accuracy, macro-F1 and the recall of each class (— where absent)."""
    head = ["set", "images", "accuracy", "macro-F1", *[c[:5] for c in CLASSES]]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for name, m in results.items():
        recall = [f"{m['recall'][c]:.3f}" if c in m["recall"] else "—" for c in CLASSES]
        lines.append(f"| {name} | {m['n_images']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | " + " | ".join(recall) + " |")
    return "\n".join(lines)
