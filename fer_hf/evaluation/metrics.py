"""Classification metrics, computed offline with scikit-learn (no `evaluate.load` from the Hub).

`classification_metrics` returns flat `name: float` entries (what `Trainer.log` accepts) with the
headline figures (accuracy, macro-F1, weighted-F1, balanced accuracy) and per-class
precision/recall/F1/support; `format_report` prints them in the seed's table layout.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support

from ..data.labels import CLASSES

LABELS = list(range(len(CLASSES)))


def classification_metrics(labels, preds) -> dict[str, float]:
    """Headline and per-class figures for integer `labels` and `preds` over the seven classes."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=LABELS, zero_division=0)
    present = s > 0  # a class absent from this split must not drag macro averages to zero
    out = {
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f[present].mean()) if present.any() else 0.0,
        "weighted_f1": float(np.average(f, weights=s)) if s.sum() else 0.0,
        "balanced_accuracy": float(balanced_accuracy_score(labels, preds)) if len(labels) else 0.0,
    }
    for i, name in enumerate(CLASSES):
        out.update({f"precision_{name}": float(p[i]), f"recall_{name}": float(r[i]),
                    f"f1_{name}": float(f[i]), f"support_{name}": int(s[i])})
    return out


def confusion(labels, preds) -> np.ndarray:
    """7x7 counts, rows = true class, columns = predicted class."""
    return confusion_matrix(labels, preds, labels=LABELS)


def compute_metrics(eval_pred) -> dict[str, float]:
    """`Trainer(compute_metrics=...)`: logits and labels -> `classification_metrics`."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    return classification_metrics(labels, np.argmax(logits, axis=-1))


def format_report(metrics: dict, prefix: str = "") -> str:
    """The seed's per-class table: precision, recall, F1, support, then macro and weighted averages."""
    get = lambda key: metrics[f"{prefix}{key}"]
    rows = [(c, get(f"precision_{c}"), get(f"recall_{c}"), get(f"f1_{c}"), get(f"support_{c}")) for c in CLASSES]
    support = np.array([r[4] for r in rows], dtype=float)
    present = support > 0
    cols = np.array([r[1:4] for r in rows], dtype=float)
    macro = cols[present].mean(axis=0) if present.any() else np.zeros(3)
    weighted = (cols * support[:, None]).sum(axis=0) / max(support.sum(), 1)
    lines = [f"{'':>14} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}", ""]
    lines += [f"{n:>14} {p:9.4f} {r:9.4f} {f:9.4f} {int(s):9d}" for n, p, r, f, s in rows]
    lines += ["", f"{'accuracy':>14} {'':>9} {'':>9} {get('accuracy'):9.4f} {int(support.sum()):9d}"]
    lines += [f"{'macro avg':>14} {macro[0]:9.4f} {macro[1]:9.4f} {macro[2]:9.4f} {int(support.sum()):9d}"]
    lines += [f"{'weighted avg':>14} {weighted[0]:9.4f} {weighted[1]:9.4f} {weighted[2]:9.4f} {int(support.sum()):9d}"]
    return "\n".join(lines)
