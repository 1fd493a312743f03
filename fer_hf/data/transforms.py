"""Lazy image transforms (for `Dataset.set_transform`) and the batch collator.

Images arrive undecoded (`{"bytes", "path"}`); `decode_image` opens them with EXIF orientation
honoured and any mode (grayscale, RGBA, CMYK, palette, 16-bit) turned into 8-bit RGB. A file that
cannot be decoded becomes `None` and `FerCollator` drops it from the batch with a counted warning,
so one bad image never ends a long run. Augmentation defaults to the seed's: resize, horizontal
flip, rotation +-10 degrees, colour jitter (shift, zoom and erasing are opt-in); it runs on the PIL
image at the smaller of its own size and the model's, and normalisation happens once per batch in
the collator. Its randomness comes from a seed keyed by the batch's images (`batch_seed`), not from
the global torch RNG, so a resumed run augments exactly as the uninterrupted one did.
"""

from __future__ import annotations

import io
import logging
import warnings
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision import transforms as v1
from torchvision.transforms import v2

logger = logging.getLogger(__name__)

# `policy`: torchvision's learned / searched augmentation policies on top of the recipe's own geometry
AUGMENT_POLICIES = {"none": None, "trivialaugment": v2.TrivialAugmentWide, "randaugment": v2.RandAugment,
                    "autoaugment": v2.AutoAugment}


class BadImageError(ValueError):
    """An input that is not a usable image."""


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode; 16/32-bit images are rescaled rather than clipped to white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def open_image(source) -> Image.Image:
    """Decode a path, bytes, `{"bytes", "path"}` dict or PIL image to RGB; raises `BadImageError`."""
    name = source.get("path") if isinstance(source, dict) else source if isinstance(source, str) else None
    try:
        if isinstance(source, Image.Image):
            img = source
        else:
            if isinstance(source, dict):
                source = source.get("bytes") or source.get("path")
            if source is None:
                raise BadImageError("empty image entry (no bytes, no path)")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
                img.seek(0)  # first frame of an animated GIF/WebP
                img.load()
        img = ImageOps.exif_transpose(img)
        if min(img.size) < 2:
            raise BadImageError(f"image of {img.size[0]}x{img.size[1]} pixels is too small to hold a face")
        return to_rgb(img)
    except BadImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # PIL names a BytesIO object, not the file: say which input it was, when we know.
        message = str(err).replace(repr(getattr(err, "filename", "")), "") if name else str(err)
        raise BadImageError(f"{name + ': ' if name else ''}{type(err).__name__}: {message}") from err


def batch_seed(images, seed: int) -> int:
    """A seed from a batch's images (their bytes, else their paths) and the run's seed.

    Keyed by the whole batch, an image is augmented differently in every batch it lands in; only a batch
    of exactly the same images in the same order (e.g. batch size 1, the same image) repeats its draws.
    """
    key = zlib.crc32(str(seed).encode())
    for image in images:
        if isinstance(image, dict):
            image = image.get("bytes") or image.get("path") or b""
        if isinstance(image, Image.Image):
            image = image.tobytes()
        key = zlib.crc32(image.encode() if isinstance(image, str) else bytes(image or b""), key)
    return key


class FerTransform:
    """Batch transform for `set_transform`: undecoded images -> uint8 CHW tensors (or None if bad)."""

    def __init__(self, image_size: int, train: bool, rotation: float = 10.0, translate: float = 0.0,
                 scale_jitter: float = 0.0, color_jitter: float = 0.2, random_erasing: float = 0.0,
                 policy: str = "none", crop_scale: float = 1.0, seed: int = 0, teacher_view: bool = False):
        self.image_size, self.seed = image_size, seed
        # with `teacher_view`, each training row also carries the face with only its flip (`teacher_pixel_values`):
        # what a distillation teacher scores instead of the augmented view (`--teacher_view flip`)
        self.teacher_view = teacher_view and train
        if policy not in AUGMENT_POLICIES:
            raise ValueError(f"policy={policy!r}: expected one of {list(AUGMENT_POLICIES)}.")
        if not 0.05 <= crop_scale <= 1:
            raise ValueError(f"crop_scale={crop_scale}: expected the smallest crop's share of the face in [0.05, 1].")
        for name, value, top in (("rotation", rotation, 180), ("translate", translate, 0.5),
                                 ("scale_jitter", scale_jitter, 0.9), ("color_jitter", color_jitter, 1),
                                 ("random_erasing", random_erasing, 1)):
            if not 0 <= value <= top:
                raise ValueError(f"{name}={value}: expected a value in [0, {top}].")
        # Geometry and colour run on the small PIL image (docs/decisions.md, "Augmentation on the small image");
        # erasing needs the tensor.
        # the flip is drawn by hand in `one` (one torch.rand draw, as v2.RandomHorizontalFlip), so that the teacher's
        # view can share it
        self.flip = train
        steps = []
        bilinear = v2.InterpolationMode.BILINEAR
        if translate or scale_jitter:  # one affine warp for rotation, shift and zoom: one resampling
            steps.append(v2.RandomAffine(rotation, translate=(translate, translate) if translate else None,
                                         scale=(1 - scale_jitter, 1 + scale_jitter) if scale_jitter else None,
                                         interpolation=bilinear))
        elif rotation:
            steps.append(v2.RandomRotation(rotation, interpolation=bilinear))
        if color_jitter:
            steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
        if policy != "none":  # torchvision's searched policies, after the recipe's own geometry
            steps.append(AUGMENT_POLICIES[policy]())
        # a random resized crop (Inception-style, aspect 3:4..4:3): a plain crop here, the resize below scales it
        self.crop_scale = crop_scale if train else 1.0
        self.augment = v2.Compose(steps) if train and steps else None
        # occlusion (hands, glasses, hair) as in many FER recipes; fills with zeros
        self.erase = v2.RandomErasing(random_erasing, scale=(0.02, 0.2)) if train and random_erasing else None

    @property
    def views(self) -> int | None:
        """How many distinct views of an image a distillation teacher scores: 1 without augmentation, 2 with flips only
        or with `teacher_view`, None (unbounded) otherwise; a teacher cache pays where views repeat
        (fer_hf/training/budget.py plans with it)."""
        if not self.flip:
            return 1
        flips_only = self.augment is None and self.erase is None and self.crop_scale >= 1
        return 2 if flips_only or self.teacher_view else None

    @staticmethod
    def tensor(img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)

    def one(self, value) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None:
        """One image's training or evaluation tensor (with `teacher_view`: the pair (augmented, flip only))."""
        try:
            img = open_image(value)
        except BadImageError as err:
            path = value.get("path") if isinstance(value, dict) else None
            logger.warning("skipping unreadable image %s: %s", path or "<bytes>", err)
            return None
        size = (self.image_size, self.image_size)
        face = img
        if self.crop_scale < 1:
            top, left, h, w = v1.RandomResizedCrop.get_params(img, (self.crop_scale, 1.0), (3 / 4, 4 / 3))
            img = img.crop((left, top, left + w, top + h))
        flipped = self.flip and torch.rand(1).item() < 0.5
        if flipped:
            img = ImageOps.mirror(img)
        if self.augment is None:
            img = img.resize(size, Image.BICUBIC)
        elif img.width * img.height < self.image_size ** 2:
            # An upscaled source (FER2013's 48 px trained at 64 or 224): augment the small image, then resize;
            # flip, warp and jitter commute with the resize (docs/decisions.md, "Augmentation on the small image").
            img = self.augment(img).resize(size, Image.BICUBIC)
        else:
            img = self.augment(img.resize(size, Image.BICUBIC))
        x = self.tensor(img)
        x = self.erase(x) if self.erase is not None else x
        if not self.teacher_view:
            return x
        return x, self.tensor((ImageOps.mirror(face) if flipped else face).resize(size, Image.BICUBIC))

    def __call__(self, batch: dict) -> dict:
        if not self.flip:
            pixel_values = [self.one(v) for v in batch["image"]]
        else:
            # The DataLoader loads batches ahead of the step that trains on them, and Trainer restores the
            # global RNG only after the first resumed batch is loaded, so global-RNG augmentation cannot be
            # replayed after a resume. A CPU generator seeded by the batch itself can (and leaves the global
            # stream, which dropout and drop-path use, untouched).
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(batch_seed(batch["image"], self.seed))
                pixel_values = [self.one(v) for v in batch["image"]]
        out = {"pixel_values": pixel_values, "labels": batch["label"]}
        if self.teacher_view:
            out["pixel_values"] = [v[0] if v is not None else None for v in pixel_values]
            out["teacher_pixel_values"] = [v[1] if v is not None else None for v in pixel_values]
        for key, name in (("source", "source"), ("soft_label", "soft_labels")):  # soft_label: label_mode votes
            if key in batch:
                out[name] = batch[key]
        return out


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW RGB -> the same in grey (R = G = B = PIL's "L": (19595 R + 38470 G + 7471 B + 2^15) >> 16).

    Integer arithmetic, so the static page (fer.js) computes the very same bytes; a grey pixel stays unchanged."""
    r, g, b = x.to(torch.int32).unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 32768) >> 16).to(torch.uint8).unsqueeze(1).expand_as(x)


class FerCollator:
    """Stacks the good rows of a batch and normalises them; counts and drops the bad ones. With `grayscale`, every
    face is read in grey first: a model that learnt from grey faces only never meets colour (docs/decisions.md,
    "Grey input for models trained on grey faces")."""

    def __init__(self, mean, std, image_size: int, grayscale: bool = False):
        self.image_size, self.grayscale = image_size, grayscale
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.skipped = 0

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> float NCHW with the model's mean and std (grey first, with `grayscale`)."""
        if self.grayscale:
            x = to_grey(x)
        return x.float().sub_(self.mean).div_(self.std)  # in place: no full-size temporaries

    def __call__(self, rows: list[dict]) -> dict:
        good = [r for r in rows if r["pixel_values"] is not None]
        if len(good) < len(rows):
            self.skipped += len(rows) - len(good)
            logger.warning("%d unreadable image(s) skipped so far", self.skipped)
        if not good:  # a well-formed empty batch; FerTrainer gives it a zero loss
            size = (0, 3, self.image_size, self.image_size)
            return {"pixel_values": torch.zeros(size), "labels": torch.zeros(0, dtype=torch.long)}
        out = {
            "pixel_values": self.normalise(torch.stack([r["pixel_values"] for r in good])),
            "labels": torch.tensor([r["labels"] for r in good], dtype=torch.long),
        }
        if "soft_labels" in good[0]:  # the vote distribution (label_mode: votes), a training target
            out["soft_labels"] = torch.tensor([r["soft_labels"] for r in good], dtype=torch.float32)
        if "teacher_pixel_values" in good[0]:  # the view a distillation teacher scores (FerTransform teacher_view)
            out["teacher_pixel_values"] = self.normalise(torch.stack([r["teacher_pixel_values"] for r in good]))
        return out
