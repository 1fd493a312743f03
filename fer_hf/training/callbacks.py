"""Trainer add-ons: the whole run's training time, the confusion matrix in TensorBoard, per-source results.

- `TrainingClock` counts the seconds a run trained over all its parts: transformers' `train_runtime` is the last
  process's only, so a run resumed after a session ended would report a fraction of its time. The count travels
  in each checkpoint's trainer_state.json (`stateful_callbacks`), as transformers keeps callback state.

- `ConfusionMatrixCallback(trainer)` draws the eval confusion matrix at every evaluation and logs it
  as an image to TensorBoard, through the writer of the trainer's own `TensorBoardCallback` when it
  has one (same run folder as the scalars), else through its own writer in `output_dir/runs/...`.
  The labels and predictions come from the evaluation that just ran (it wraps `compute_metrics`),
  so nothing is predicted twice. Main process only.
- `per_source_eval_metrics(trainer)` scores the trained model on each source of its eval dataset,
  as flat `eval_<source>_<metric>` entries for `all_results.json`.
"""

from __future__ import annotations

import os
import time

import numpy as np
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ..evaluation.metrics import confusion
from ..evaluation.scoring import figure_to_array, per_source_metrics, plot_confusion_matrix, predict_logits, softmax

PER_SOURCE_KEYS = ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "ece", "nll", "n_images")


class TrainingClock(TrainerCallback, ExportableState):
    """Seconds trained since the run began, across resumes, up to the last checkpoint resumed from (`seconds()`).

    `whole` is False when the run resumed from a checkpoint written without the clock: then only the parts since
    are counted, and `train_runtime_total` is not reported."""

    def __init__(self):
        self.before, self.whole = 0.0, True  # seconds of the earlier parts, kept in the checkpoint
        self.start = self.end = None

    def seconds(self) -> float:
        if self.start is None:
            return self.before
        return self.before + ((self.end or time.perf_counter()) - self.start)

    def state(self) -> dict:
        return {"args": {}, "attributes": {"before": round(self.seconds(), 2), "whole": self.whole}}

    def on_train_begin(self, args, state, control, **kwargs):
        name = type(self).__name__
        saved = state.stateful_callbacks.get(name)
        if isinstance(saved, dict) and "before" in saved.get("attributes", {}):  # a fresh run's is 0; a resumed one's
            self.before = float(saved["attributes"]["before"])
            self.whole = bool(saved["attributes"].get("whole", True))
        else:  # resumed from a checkpoint that predates the clock (FerTrainer gives it its key at the first save)
            self.whole = False
        self.start, self.end = time.perf_counter(), None

    def on_train_end(self, args, state, control, **kwargs):
        self.end = time.perf_counter()


class ConfusionMatrixCallback(TrainerCallback):
    """Logs `<prefix>/confusion_matrix` (row-normalised, with counts) to TensorBoard per evaluation."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.labels = self.preds = None
        self._own_writer = self._own_dir = None
        inner = trainer.compute_metrics

        def capture(eval_pred):  # the Trainer calls this with the gathered eval predictions
            logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
            self.labels, self.preds = np.asarray(eval_pred.label_ids), np.argmax(logits, axis=-1)
            return inner(eval_pred) if inner is not None else {}

        trainer.compute_metrics = capture

    def _writer(self, args):
        """The TensorBoardCallback's writer if it has one, else ours (created once, lazily)."""
        from transformers.integrations import TensorBoardCallback

        for cb in self.trainer.callback_handler.callbacks:
            if isinstance(cb, TensorBoardCallback) and cb.tb_writer is not None:
                return cb.tb_writer
        if self._own_writer is None:
            from torch.utils.tensorboard import SummaryWriter
            from transformers.integrations.integration_utils import default_logdir

            # one folder per callback: an evaluate() after training reopens the same run, not a new one
            self._own_dir = self._own_dir or os.path.join(args.output_dir, default_logdir())
            self._own_writer = SummaryWriter(log_dir=self._own_dir)
        return self._own_writer

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or self.labels is None:
            return
        # `trainer.evaluate(metric_key_prefix="test")` logs test_* metrics: tag the figure alike
        prefix = next((k.removesuffix("_loss") for k in (metrics or {}) if k.endswith("_loss")), "eval")
        fig = plot_confusion_matrix(confusion(self.labels, self.preds), title=f"{prefix}, step {state.global_step}")
        writer = self._writer(args)
        writer.add_image(f"{prefix}/confusion_matrix", figure_to_array(fig), state.global_step, dataformats="HWC")
        writer.flush()
        self.labels = self.preds = None  # never log a stale matrix for an evaluation without labels

    def on_train_end(self, args, state, control, **kwargs):
        if self._own_writer is not None:
            self._own_writer.close()
            self._own_writer = None


def eval_predictions(trainer, dataset=None):
    """(labels, probabilities, sources) of the trained model on `dataset` (default: the eval set), on the main process
    (None on the others); `evaluation.predict_logits` skips unreadable images without shifting the `source` column."""
    if not trainer.is_world_process_zero():
        return None
    dataset = trainer.eval_dataset if dataset is None else dataset
    if dataset is None or "source" not in dataset.column_names:
        raise ValueError("per_source_eval_metrics needs an eval dataset with a `source` column "
                         "(as built by fer_hf.data.sources.build_datasets).")
    pred = predict_logits(trainer.model, dataset, trainer.args.per_device_eval_batch_size, bf16=bool(trainer.args.bf16),
                          desc="per-source eval")
    raw = dataset.with_format(None)
    return np.asarray(raw["label"])[pred.kept], softmax(pred.logits), np.asarray(raw["source"])[pred.kept]


def per_source_eval_metrics(trainer, dataset=None, prefix: str = "eval", predictions=None) -> dict:
    """`{f"{prefix}_{source}_{metric}": value}` for each source of `dataset` (default: the eval set), from
    `predictions` (eval_predictions') when given; other processes than the main one return `{}`."""
    predictions = predictions if predictions is not None else eval_predictions(trainer, dataset)
    if predictions is None:
        return {}
    labels, probs, sources = predictions
    per_source = per_source_metrics(labels, probs, sources)
    return {f"{prefix}_{source}_{key}": figures[key] for source, figures in per_source.items() for key in PER_SOURCE_KEYS}
