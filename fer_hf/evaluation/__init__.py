"""Evaluation: metrics, batched predictions, calibration, figures, and the quality suite.

- `metrics`: accuracy, macro-F1, per-class figures, the confusion matrix (scikit-learn).
- `scoring`: predictions over a dataset (flip TTA), calibration (ECE, temperature scaling), figures.
- `suite`: one model on FER+ validation and the cross-domain dev sets, one table.
- `curves`: validation after each epoch of a run, and the figure of several runs.

May import: data, models, utils.
"""
