"""`FerTrainer`: the transformers `Trainer` plus class-balanced sampling and CutMix.

- Sampling: `_get_train_sampler` returns a seeded `WeightedRandomSampler` (inverse class frequency)
  that reseeds itself per epoch, so a resumed run replays the same stream; Accelerate shards its
  batches across processes (no DistributedSampler around it).
- CutMix (Yun et al., 2019, https://arxiv.org/abs/1905.04899) with timm's box (`cutmix_bbox_and_lam`),
  applied in `compute_loss` only while the model trains, with a soft-target
  cross-entropy computed here. We never hand float labels to the model's own loss: that silently
  switches `problem_type` to multi-label and pipelines would then apply a sigmoid.
- Vote targets: a batch with `soft_labels` (the FER+ annotators' distribution, `label_mode: votes`)
  trains on that distribution instead of the one-hot label, smoothed and CutMixed the same way.
- Distillation (`teacher_model`, see `distill.py`): a frozen teacher scores the same augmented,
  CutMixed batch (or, with `teacher_view: flip`, each face with only its flip); its share of the training step is
  measured and logged as `teacher_share`. Its logits are cached per distinct view (`TeacherCache`), so repeated
  views (flip-only augmentation, `teacher_view: flip`) cost no forward pass.
- Logit adjustment (Menon et al., 2021, https://arxiv.org/abs/2007.07314): the training loss scores
  logits + tau * log(prior), so the network's own logits come out class-balanced.
- EMA of the weights (`ema_decay`, ema.py): evaluated and saved in place of the raw weights.
- bf16 on a CPU: timm's attention runs as explicit softmax(QK^T)V (`use_math_attention`), faster there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from timm.data.mixup import cutmix_bbox_and_lam
from timm.loss import SoftTargetCrossEntropy
from torch.utils.data import WeightedRandomSampler
from transformers import Trainer, TrainingArguments
from transformers.trainer_callback import ExportableState

from ..data.labels import CLASSES
from .distill import DISTILLATION_TYPES, TeacherCache, TeacherInput, distillation_loss, load_teacher
from .ema import EmaCallback
from .precision import apply_precision_policy

logger = logging.getLogger(__name__)

TEACHER_VIEWS = ("same", "flip")


@dataclass
class FerTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the FER recipe's own knobs."""

    cutmix_prob: float = field(default=0.0, metadata={"help": "Probability that a training batch is CutMixed."})
    cutmix_alpha: float = field(default=1.0, metadata={"help": "Beta(alpha, alpha) for the CutMix box area."})
    class_balanced_sampling: bool = field(default=False, metadata={"help": "Draw training images with inverse class frequency."})
    logit_adjustment: float = field(default=0.0, metadata={"help": "tau of the logit-adjusted loss (Menon et al. 2021): "
                                    "training scores logits + tau * log(class prior), a balanced classifier without "
                                    "changing what is drawn; 0 turns it off, 1 is the paper's choice."})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Stop after this many evaluations without improvement."})
    ema_decay: float = field(default=0.0, metadata={"help": "Keep an exponential moving average of the weights with "
                             "this decay (timm ModelEmaV3, e.g. 0.999); evaluation and the saved model use it. 0: off."})
    teacher_model: str | None = field(default=None, metadata={"help": "Model folder of a trained teacher to distil from (DeiT)."})
    distillation_alpha: float = field(default=0.5, metadata={"help": "Weight of the teacher's term in the loss (0..1)."})
    distillation_temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of soft distillation."})
    distillation_type: str = field(default="soft", metadata={"help": "'soft' (KL to the teacher's distribution) or 'hard' (its argmax)."})
    teacher_view: str = field(default="same", metadata={"help": "What the teacher scores: 'same', the very view the "
                              "student trains on (DeiT); 'flip', the face with only that view's flip, so each face has two "
                              "teacher views and the teacher cache answers from the third epoch on. Not with CutMix."})
    teacher_cache_size: int = field(default=500_000, metadata={"help": "Views whose teacher logits are kept, so a "
                                    "repeated view (flip-only augmentation) is never scored twice; 0 turns it off."})
    time_budget_minutes: float | None = field(default=None, metadata={"help": "Cap the run at what fits this many minutes on "
                                             "this machine (a few steps are timed first; see fer_hf/training/budget.py)."})
    teacher_budget_minutes: float | None = field(default=None, metadata={"help": "The teacher recipe's time budget: "
                                                "whatever of it the teacher's training left unused (by its recorded "
                                                "train_runtime) is added to this run's time_budget_minutes."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start afresh even if output_dir holds checkpoints."})
    # Our collator needs the `image`/`label` columns that Trainer would otherwise strip.
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep False: the lazy transforms read raw columns."})

    def __post_init__(self):
        if str(self.teacher_model).lower() in ("", "none"):  # `--teacher_model none` turns a recipe's teacher off
            self.teacher_model = None
        if self.distillation_type not in DISTILLATION_TYPES:
            raise ValueError(f"distillation_type={self.distillation_type!r}: expected one of {DISTILLATION_TYPES}.")
        if not 0 <= self.distillation_alpha <= 1 or self.distillation_temperature <= 0:
            raise ValueError(f"distillation_alpha={self.distillation_alpha} must lie in [0, 1] and "
                             f"distillation_temperature={self.distillation_temperature} be positive.")
        if self.teacher_view not in TEACHER_VIEWS:
            raise ValueError(f"teacher_view={self.teacher_view!r}: expected one of {TEACHER_VIEWS}.")
        if self.teacher_view == "flip" and self.cutmix_prob:
            raise ValueError(f"teacher_view='flip' with cutmix_prob={self.cutmix_prob}: a CutMixed view has no "
                             "unmixed face for the teacher to score; use teacher_view 'same' with CutMix.")
        # the device and precision policy (precision.py), before transformers validates the arguments
        self.precision_decision = apply_precision_policy(self)
        super().__post_init__()

    @property
    def precision(self) -> str:
        """The precision training actually runs in, for logs and results."""
        return self.precision_decision.precision


class EpochWeightedSampler(WeightedRandomSampler):
    """A `WeightedRandomSampler` whose stream depends only on (seed, epoch): resumable and shardable."""

    def __init__(self, weights, num_samples: int, seed: int):
        super().__init__(weights, num_samples, replacement=True, generator=torch.Generator())
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator.manual_seed(self.seed + 1_000_003 * self.epoch)
        return super().__iter__()


def use_math_attention(model: torch.nn.Module) -> int:
    """Switch timm's attention layers from the fused kernel (`F.scaled_dot_product_attention`) to the explicit
    softmax(QK^T)V; returns how many were switched.

    Why: under bf16 autocast on a CPU the fused kernel's backward dominates a ViT-Tiny step at our short sequences
    (docs/decisions.md, "Explicit attention under CPU bf16"). The saved model is unchanged: `fused_attn` is a
    runtime switch, not part of its config.
    """
    n = 0
    for module in model.modules():
        if getattr(module, "fused_attn", None) is True:
            module.fused_attn = False
            n += 1
    return n


def class_weights(labels: np.ndarray, num_classes: int = len(CLASSES)) -> np.ndarray:
    """Per-sample weights proportional to 1 / count(class): every class is drawn equally often."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return 1.0 / counts[labels]


_SOFT_TARGET_CE = SoftTargetCrossEntropy()


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution per row (CutMix / label-smoothed targets), in float32: timm's."""
    return _SOFT_TARGET_CE(logits.float(), targets)


def cutmix_(x: torch.Tensor, alpha: float) -> float:
    """Paste a box of each image's mirror in the batch (x.flip(0)) into it, in place; the pasted area's complement.

    timm's own box (`cutmix_bbox_and_lam`, area drawn from Beta(alpha, alpha), lam corrected to the clipped box),
    drawn from numpy's global RNG, which Trainer seeds and checkpoints: a resumed run pastes the same boxes."""
    (yl, yh, xl, xh), lam = cutmix_bbox_and_lam(x.shape, float(np.random.beta(alpha, alpha)), correct_lam=True)
    x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
    return lam


class FerTrainer(Trainer):
    """Trainer with class-balanced sampling, CutMix, vote targets and distillation; the rest is stock."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        a = self.args
        if a.bf16 and a.device.type == "cpu" and (n := use_math_attention(self.model)):
            logger.info("bf16 on the CPU: %d attention layers use the explicit softmax(QK^T)V, not the fused kernel", n)
        self.ema = None
        if a.ema_decay:
            if not 0 < a.ema_decay < 1:
                raise ValueError(f"ema_decay={a.ema_decay}: expected a decay in (0, 1), e.g. 0.999, or 0 for none.")
            self.ema = EmaCallback(a.ema_decay)
            self.add_callback(self.ema)
        self.log_prior = None
        if a.logit_adjustment and self.train_dataset is not None:
            counts = np.bincount(np.asarray(self.train_dataset.with_format(None)["label"]), minlength=len(CLASSES))
            self.log_prior = a.logit_adjustment * torch.log(torch.as_tensor(np.maximum(counts, 1) / counts.sum()).float())
        self.teacher = self.teacher_input = self.teacher_cache = None
        self.teacher_seconds, self.train_started = 0.0, None
        if a.teacher_model:
            self.teacher = load_teacher(a.teacher_model, self.args.device)
            self.teacher_input = TeacherInput(self.model.config, self.teacher.config)
            self.teacher_cache = TeacherCache(a.teacher_cache_size) if a.teacher_cache_size > 0 else None
            if a.teacher_view == "flip" and self.teacher_cache is None:
                logger.warning("teacher_view flip without a teacher cache (teacher_cache_size 0): the teacher still "
                               "scores every step; a cache (e.g. --teacher_cache_size 100000) answers its repeated views.")
            # DeiT's distillation token (timm `deit_*_distilled_*`): in training the network returns (class-token
            # logits, distillation-token logits); the first learns the targets, the second the teacher. In eval
            # mode timm averages the two heads, so the saved folder predicts like any other.
            if hasattr(self.model.timm_model, "set_distilled_training"):
                self.model.timm_model.set_distilled_training(True)
            logger.info("Distilling from %s (%s, %s, alpha %g, T %g)", a.teacher_model, self.teacher.config.architecture,
                        a.distillation_type, a.distillation_alpha, a.distillation_temperature)

    def train(self, resume_from_checkpoint=None, **kwargs):
        if self.ema is not None and isinstance(resume_from_checkpoint, str):
            self.ema.resume_from = resume_from_checkpoint  # its saved average is loaded when training begins
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _save_checkpoint(self, model, trial):
        # transformers indexes state.stateful_callbacks[name] for every ExportableState callback at each save, so a
        # callback that a resumed run has and its checkpoint did not (e.g. --early_stopping_patience added on the
        # resume) would raise KeyError at the first save: give it its key first.
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, ExportableState):
                self.state.stateful_callbacks.setdefault(type(callback).__name__, callback.state())
        super()._save_checkpoint(model, trial)

    def evaluate(self, *args, **kwargs):
        """Evaluation with the averaged weights when `ema_decay` is set (and training has begun)."""
        with self.ema.swapped_into(self.model) if self.ema is not None else contextlib.nullcontext():
            return super().evaluate(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.args.class_balanced_sampling:
            return super()._get_train_sampler(dataset)
        labels = np.asarray(dataset.with_format(None)["label"], dtype=np.int64)
        return EpochWeightedSampler(torch.as_tensor(class_weights(labels)), len(labels), self.args.seed)

    def training_targets(self, pixel_values: torch.Tensor, labels: torch.Tensor, soft_labels: torch.Tensor | None = None):
        """(images, soft targets): the one-hot label (or the vote distribution `soft_labels`), label-smoothed,
        and CutMixed with probability `cutmix_prob` (box pasted from the batch's mirror, targets mixed by area)."""
        smooth = self.args.label_smoothing_factor
        targets = soft_labels.float() if soft_labels is not None else F.one_hot(labels, len(CLASSES)).float()
        targets = targets * (1 - smooth) + smooth / len(CLASSES)
        # numpy's global RNG (as timm's box): Trainer seeds it and saves it in every checkpoint, so a resumed run
        # draws the same boxes as an uninterrupted one. Targets are mixed here, so that one-hot and vote-distribution
        # targets go through the same path.
        mix = self.args.cutmix_prob > 0 and len(labels) % 2 == 0 and np.random.random() < self.args.cutmix_prob
        if mix:  # each image is mixed with its mirror in the batch, so it needs an even batch
            lam = cutmix_(pixel_values, self.args.cutmix_alpha)
            targets = targets * lam + targets.flip(0) * (1 - lam)
        return pixel_values, targets

    def teacher_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's logits for the batch the student sees; the time it takes is counted."""
        start = time.perf_counter()
        with torch.no_grad(), self.accelerator.autocast():
            score = lambda x: self.teacher(pixel_values=self.teacher_input(x)).logits
            logits = self.teacher_cache(pixel_values, score) if self.teacher_cache is not None else score(pixel_values)
        self.teacher_seconds += time.perf_counter() - start
        return logits

    def teacher_share(self) -> float | None:
        """Share of the wall-clock time since training started that went into the teacher's forward passes."""
        if self.teacher is None or self.train_started is None:
            return None
        return self.teacher_seconds / max(time.perf_counter() - self.train_started, 1e-9)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pixel_values, labels = inputs["pixel_values"], inputs["labels"]
        if model.training:
            self.train_started = self.train_started or time.perf_counter()
            pixel_values, targets = self.training_targets(pixel_values, labels, inputs.get("soft_labels"))
        outputs = model(pixel_values=pixel_values)
        logits = outputs.logits
        # a distillation token's head (DeiT) learns the teacher; without one, the same logits learn both
        logits, distill_logits = logits if isinstance(logits, tuple) else (logits, logits)
        if len(labels) == 0:  # every image of the batch was unreadable
            loss = logits.sum() * 0.0
        elif model.training:
            adjusted = logits.float() + self.log_prior.to(logits.device) if self.log_prior is not None else logits
            loss = soft_cross_entropy(adjusted, targets)
            if self.teacher is not None:
                a = self.args
                seen = inputs.get("teacher_pixel_values", pixel_values)  # teacher_view 'flip': the unaugmented face
                loss = distillation_loss(distill_logits, self.teacher_logits(seen), loss, a.distillation_type,
                                         a.distillation_alpha, a.distillation_temperature)
        else:  # evaluation is never mixed nor smoothed: the plain loss users compare across runs
            loss = F.cross_entropy(logits.float(), labels)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        share = self.teacher_share()
        if share is not None and "loss" in logs:  # training logs only
            logs["teacher_share"] = round(share, 4)
        if self.teacher_cache is not None and self.teacher_cache.lookups and "loss" in logs:
            logs["teacher_cache_hits"] = round(self.teacher_cache.hit_rate, 4)
        super().log(logs, *args, **kwargs)


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` in `output_dir` that was fully written, skipping half-written ones.

    A run killed during a save leaves a folder without `trainer_state.json` (written last by
    Trainer) or without weights; resuming from it would crash, so we say so and take the one before.
    """
    if not os.path.isdir(output_dir):
        return None
    steps = sorted((int(d.split("-")[1]), d) for d in os.listdir(output_dir)
                   if d.startswith("checkpoint-") and d.split("-")[1].isdigit())
    for _, name in reversed(steps):
        path = os.path.join(output_dir, name)
        files = set(os.listdir(path))
        if "trainer_state.json" in files and files & {"model.safetensors", "pytorch_model.bin"}:
            try:  # a kill while trainer_state.json was being written leaves it truncated
                with open(os.path.join(path, "trainer_state.json")) as f:
                    json.load(f)
                return path
            except (OSError, ValueError):
                pass
        logger.warning("ignoring incomplete checkpoint %s (killed while saving?)", path)
    return None
