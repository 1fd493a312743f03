"""Classification metrics, computed offline with scikit-learn (no `evaluate.load` from the Hub).

`classification_metrics` returns flat `name: float` entries (what `Trainer.log` accepts) with the
headline figures (accuracy, macro-F1, weighted-F1, balanced accuracy) and per-class
precision/recall/F1/support; `text_report` is scikit-learn's per-class table.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)

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


def text_report(labels, preds) -> str:
    """scikit-learn's classification report over the seven classes (precision, recall, F1, support, then accuracy and
    the macro and weighted averages): the seed's per-class table."""
    return classification_report(np.asarray(labels), np.asarray(preds), labels=LABELS, target_names=list(CLASSES),
                                 digits=4, zero_division=0)
