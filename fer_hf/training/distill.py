"""Knowledge distillation from a frozen teacher (DeiT, Touvron et al. 2021, https://arxiv.org/abs/2012.12877).

The teacher is any model folder this project wrote (a timm CNN or ViT in a `TimmWrapper`). It is
loaded once, frozen, kept in eval mode and scored under `no_grad` on the very batch the student
trains on (augmented and CutMixed), after re-normalising and resizing that batch to the teacher's
own preprocessing. The loss mixes the usual target cross-entropy with the teacher's signal:

- soft: `(1 - alpha) * CE(student, targets) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))`
  (Hinton et al. 2015; DeiT's "soft distillation");
- hard: `(1 - alpha) * CE(student, targets) + alpha * CE(student, argmax teacher)` (DeiT's "hard
  distillation"; alpha 0.5 is DeiT's choice).
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.nn.functional as F

from ..data.labels import CLASSES
from ..models.modeling import preprocessing_config
from ..models.run_folder import RunFolder

DISTILLATION_TYPES = ("soft", "hard")


def teacher_record(model_dir: str, model) -> dict:
    """What a student records of its teacher (train_args.json, config.json, model card)."""
    return {"path": os.path.abspath(model_dir), "architecture": getattr(model.config, "architecture", None),
            "validation": RunFolder.read(model_dir, require_model=False).validation_metrics()}


def load_teacher(model_dir: str, device: torch.device | str = "cpu"):
    """A frozen eval-mode teacher from a model folder; raises a clear error for anything else."""
    from transformers import AutoModelForImageClassification

    if not os.path.isdir(model_dir) or not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise FileNotFoundError(
            f"--teacher_model {model_dir!r}: not a model folder (expected config.json + model.safetensors written by "
            "scripts/train.py; train one first, e.g. `accelerate launch scripts/train.py scripts/configs/ferplus_teacher_cpu.yaml`).")
    teacher = AutoModelForImageClassification.from_pretrained(model_dir)
    labels = [teacher.config.id2label.get(i) for i in range(teacher.config.num_labels)]
    if labels != list(CLASSES):
        raise ValueError(f"--teacher_model {model_dir!r} predicts {labels}; a teacher must predict the seven "
                         f"canonical classes in order {list(CLASSES)}.")
    teacher.requires_grad_(False)
    # channels-last: oneDNN's CNN kernels run a frozen CNN's forward pass markedly faster in it on a CPU
    # (docs/decisions.md, "Teacher logits cached per view"); a ViT's only 4-D weight is its patch convolution
    return teacher.to(device, memory_format=torch.channels_last).eval()


class TeacherInput:
    """Turns the student's normalised batch into the teacher's: undo the student's mean/std, apply the
    teacher's, and resize if the two were trained at different sizes (cheap next to a forward pass)."""

    def __init__(self, student_config, teacher_config):
        s, t = preprocessing_config(student_config), preprocessing_config(teacher_config)
        self.size = t["image_size"] if t["image_size"] != s["image_size"] else None
        view = (1, 3, 1, 1)
        # x_t = (x_s * std_s + mean_s - mean_t) / std_t  =  x_s * scale + shift
        std_s, mean_s = torch.tensor(s["std"]).view(view), torch.tensor(s["mean"]).view(view)
        std_t, mean_t = torch.tensor(t["std"]).view(view), torch.tensor(t["mean"]).view(view)
        self.scale, self.shift = std_s / std_t, (mean_s - mean_t) / std_t
        self.identity = bool(torch.allclose(self.scale, torch.ones(view)) and torch.allclose(self.shift, torch.zeros(view)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.identity:
            x = x * self.scale.to(x.device, x.dtype) + self.shift.to(x.device, x.dtype)
        if self.size is not None:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return x


class TeacherCache:
    """The teacher's logits per distinct input image, so that a view the teacher has scored is never scored again.

    The key is a hash of the exact pixels the teacher would see (after augmentation and CutMix), so a hit is the
    same answer the teacher would give, whatever the augmentation. It pays where views repeat: with flip-only
    augmentation and no CutMix each face has two views, so from the third epoch on nearly every row is a hit and
    the teacher's forward pass all but leaves the step. With random geometry or CutMix views rarely repeat and only
    the hashing is spent (docs/decisions.md, "Teacher logits cached per view"). At most
    `max_entries` views are kept (7 floats each), so memory stays bounded on any dataset.
    """

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self.table: dict[bytes, torch.Tensor] = {}
        self.hits = self.lookups = 0

    @staticmethod
    def key(row: torch.Tensor) -> bytes:
        return hashlib.blake2b(row.contiguous().numpy().tobytes(), digest_size=16).digest()

    def __call__(self, pixel_values: torch.Tensor, score) -> torch.Tensor:
        """Logits for every row: cached ones looked up, the rest computed by `score(rows)` in one batch."""
        keys = [self.key(row) for row in pixel_values.detach().cpu()]
        missing = [i for i, k in enumerate(keys) if k not in self.table]
        self.lookups += len(keys)
        self.hits += len(keys) - len(missing)
        fresh = dict(zip(missing, score(pixel_values[missing]).float().cpu())) if missing else {}
        for i, logits in fresh.items():
            if len(self.table) < self.max_entries:
                self.table[keys[i]] = logits
        return torch.stack([fresh[i] if i in fresh else self.table[k] for i, k in enumerate(keys)]).to(pixel_values.device)

    @property
    def hit_rate(self) -> float:
        return self.hits / max(self.lookups, 1)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, base_loss: torch.Tensor,
                      kind: str, alpha: float, temperature: float) -> torch.Tensor:
    """DeiT's soft or hard distillation objective, mixed with `base_loss` (the student's target loss)."""
    s, t = student_logits.float(), teacher_logits.float()
    if kind == "soft":
        tau = temperature
        distill = F.kl_div(F.log_softmax(s / tau, -1), F.log_softmax(t / tau, -1), reduction="batchmean",
                           log_target=True) * tau * tau
    elif kind == "hard":
        distill = F.cross_entropy(s, t.argmax(-1))
    else:
        raise ValueError(f"distillation_type={kind!r}: expected one of {DISTILLATION_TYPES}.")
    return (1 - alpha) * base_loss + alpha * distill
