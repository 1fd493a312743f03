"""EmotionRecognizer: image -> faces -> seven emotion scores per face (used by the CLI and the Space).

    rec = EmotionRecognizer.from_pretrained("outputs/quickstart")
    for face in rec.recognize("photo.jpg"):
        print(face.box, face.emotion, face.confidence)

Each face is cropped (fer_hf.inference.faces) as the model's training faces were framed (its `fer_framing`, else
`SERVED_FRAMING`: FER2013's crops around YuNet's boxes) and then preprocessed exactly like the evaluation data
(`FerTransform(train=False)`: bicubic resize to the model's square size, then the collator's
normalisation), so a face crop gets the same prediction here as in scripts/evaluate.py. All faces
of a call go through the network as ONE batch; `tta="flip"` adds the mirror images to that same
batch and averages the softmax. A `calibration_temperature` in config.json (written by the evaluation script's
calibration) divides the logits before the softmax.

Two backends, one recognizer: `from_pretrained` gives it a PyTorch model (a model folder or Hub id) or an
`OnnxClassifier` (fer_hf.inference.onnx_backend: a `.onnx` file from scripts/export_onnx.py, run by onnxruntime);
only the call that turns pixel values into logits differs.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from ..data.transforms import BadImageError, FerCollator, FerTransform, open_image
from ..models.modeling import load_pretrained
from .faces import Detection, Framing, crop_box, crop_face, make_detector
from .onnx_backend import OnnxClassifier, onnx_file
from .pipeline import PipelineConfig

logger = logging.getLogger(__name__)


@dataclass
class Face:
    """One classified face. `box` is (x, y, w, h) in the input image; `scores` covers all seven classes."""

    box: tuple[int, int, int, int]
    emotion: str
    confidence: float
    scores: dict[str, float]
    detection_score: float | None = None
    crop_box: tuple[int, int, int, int] | None = field(default=None, repr=False)  # (left, top, right, bottom)
    crop: Image.Image | None = field(default=None, repr=False, compare=False)  # what the model saw

    def to_dict(self) -> dict:
        return {"box": list(self.box), "emotion": self.emotion, "confidence": self.confidence,
                "scores": dict(self.scores), "detection_score": self.detection_score}


def describe(source) -> str:
    """A short name for an input, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.size[0]}x{source.size[1]} {source.mode}>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    return f"<{type(source).__name__}>"


def array_to_pil(arr: np.ndarray) -> Image.Image:
    """HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA); uint8, uint16, bool, or float in [0, 1]."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))) or arr.size == 0:
        raise BadImageError(f"array of shape {arr.shape}: expected HxW, HxWx3 (RGB) or HxWx4 (RGBA)")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise BadImageError("float array contains NaN or inf values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise BadImageError(f"float array has values in [{lo:g}, {hi:g}]; expected [0, 1] (or pass uint8)")
        arr = np.rint(arr * 255).astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise BadImageError(f"array of dtype {arr.dtype}: expected uint8, uint16, bool or float in [0, 1]")
    return Image.fromarray(np.ascontiguousarray(arr))


def load_image(source, max_pixels: int | None = None) -> Image.Image:
    """RGB PIL image from a path, bytes, PIL image or numpy array; `BadImageError` names the input."""
    name, path = describe(source), os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    try:
        if isinstance(source, np.ndarray):
            source = array_to_pil(source)
        elif isinstance(source, os.PathLike):
            source = os.fspath(source)
        if not isinstance(source, (str, bytes, Image.Image)):
            raise BadImageError("expected a path, bytes, a PIL image or a numpy array")
        if max_pixels and not isinstance(source, Image.Image):
            _check_pixels(source, max_pixels)  # from the header, before decoding anything
        image = open_image(source)
        if max_pixels and image.width * image.height > max_pixels:
            raise BadImageError(f"{image.width}x{image.height} pixels is over the limit of {max_pixels / 1e6:g} megapixels")
        return image
    except BadImageError as err:
        reason = str(err).removeprefix(f"{path}: ") if path else str(err)  # open_image may name the file too
        raise BadImageError(f"{name} is not a usable image: {reason}") from err


def _check_pixels(source, max_pixels: int) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as probe:
                width, height = probe.size
    except Image.DecompressionBombError as err:
        raise BadImageError(f"over the limit of {max_pixels / 1e6:g} megapixels ({err})") from err
    except Image.UnidentifiedImageError as err:
        raise BadImageError("not an image file in a format Pillow reads (PNG, JPEG, GIF, WebP, BMP, TIFF, ...)") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise BadImageError(f"{type(err).__name__}: {err}") from err
    if width * height > max_pixels:
        raise BadImageError(f"{width}x{height} pixels is over the limit of {max_pixels / 1e6:g} megapixels")


class EmotionRecognizer:
    """Face detector + emotion classifier; thread-safe for serving (no state changes per call).

    `model` is a transformers image-classification model (the PyTorch backend; also `self.model`) or an
    `OnnxClassifier` (the onnxruntime backend, CPU only; `self.model` is then None). `self.backend` says which."""

    def __init__(self, model, detector=None, tta: str | None = None, device: str = "cpu",
                 margin: float | None = None, align: bool = False, temperature: float | None = None,
                 framing: Framing | None = None):
        if tta not in (None, "flip"):
            raise ValueError(f"tta={tta!r}; expected None or 'flip'")
        if isinstance(model, OnnxClassifier):
            if device != "cpu":
                raise ValueError(f"device={device!r}: the ONNX backend runs on the CPU only")
            self.backend, self.model, self.classifier = "onnx", None, model
            self.name_or_path = model.path
            pipeline = PipelineConfig.from_dict(model.meta)
        else:
            self.backend, self.model, self.classifier = "torch", model.eval().to(device), None
            self.name_or_path = getattr(model, "name_or_path", "") or ""  # the folder or Hub id it was loaded from
            pipeline = PipelineConfig.from_model_config(model.config)
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature={temperature!r}; expected a positive number (or None)")
        # arguments win over the model's own settings; an explicit margin is the old square-with-margin crop
        framing = Framing.from_margin(margin) if margin is not None else framing
        self.pipeline = replace(pipeline, temperature=temperature if temperature is not None else pipeline.temperature,
                                framing=framing or pipeline.framing)
        self.labels, self.framing = list(self.pipeline.labels), self.pipeline.framing
        self.temperature = self.pipeline.temperature  # logits are divided by it before the softmax
        self.detector, self.tta, self.device, self.align = detector, tta, device, align
        size = self.pipeline.image_size
        self.transform = FerTransform(size, train=False)  # the evaluation path, unchanged
        self.collator = FerCollator(self.pipeline.mean, self.pipeline.std, size, self.pipeline.grayscale)

    @classmethod
    def from_pretrained(cls, model_id_or_dir, detector: str | None = "auto", tta: str | None = None,
                        device: str = "cpu", yunet_model=None, threads: int = 1, detection: dict | None = None,
                        **kwargs) -> EmotionRecognizer:
        """Model from a folder or Hub id; detector "auto" (YuNet, else Haar), "yunet", "haar" or None, with the
        model's own detection settings (`PipelineConfig.detector`), changed by `detection` (e.g. {"max_side": 960}).
        The calibrated temperature stored in its config.json, if any, is used. A `.onnx` file (or a folder
        holding model.onnx and no torch weights) runs with onnxruntime instead, on `threads` threads."""
        path = onnx_file(model_id_or_dir)
        model = OnnxClassifier(path, threads) if path else load_pretrained(model_id_or_dir)
        recognizer = cls(model, None, tta=tta, device=device, **kwargs)
        recognizer.pipeline = recognizer.pipeline.with_detector(**(detection or {}))
        recognizer.detector = make_detector(detector, yunet_model, recognizer.pipeline.detector)
        return recognizer

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The one place the network runs, on either backend."""
        if self.classifier is not None:
            return self.classifier(pixel_values).float()
        with torch.inference_mode():
            return self.model(pixel_values=pixel_values.to(self.device)).logits.float().cpu()

    def pixel_values(self, crops: list[Image.Image]) -> torch.Tensor:
        """Normalised NCHW batch of face crops, exactly as evaluation builds it."""
        return self.collator.normalise(torch.stack([self.transform.one(crop) for crop in crops]))

    def predict_crops(self, crops: list[Image.Image]) -> np.ndarray:
        """Probabilities (N x classes) for face crops, in one network call (with TTA mirrors in it)."""
        if not crops:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        x = self.pixel_values(crops)
        if self.tta == "flip":
            x = torch.cat([x, x.flip(-1)])
        logits = self._logits(x)
        if self.temperature:
            logits = logits / self.temperature
        probs = logits.softmax(-1)
        if self.tta == "flip":
            probs = (probs[: len(crops)] + probs[len(crops):]) / 2
        return probs.numpy()

    def _locate(self, image: Image.Image, detect: bool) -> list[tuple[Detection, tuple, Image.Image]]:
        """(detection, crop box, crop) per face; the whole image is one face without detection."""
        if not detect or self.detector is None:
            whole = Detection((0, 0, image.width, image.height), None)
            return [(whole, (0, 0, image.width, image.height), image)]
        return [(d, crop_box(d.box, image.size, framing=self.framing),
                 crop_face(image, d, align=self.align, framing=self.framing))
                for d in self.detector.detect(image)]

    def recognize_batch(self, images: list, detect: bool = True) -> list[list[Face]]:
        """Faces per image, largest first; every face of every image in one network call."""
        located = [self._locate(load_image(image), detect) for image in images]
        probs = self.predict_crops([crop for faces in located for _, _, crop in faces])
        out, row = [], 0
        for faces in located:
            out.append([self._face(det, box, crop, probs[row + i]) for i, (det, box, crop) in enumerate(faces)])
            row += len(faces)
        return out

    def recognize(self, image, detect: bool = True) -> list[Face]:
        """Faces in one image (an empty list if the detector finds none); `detect=False` for crops."""
        return self.recognize_batch([image], detect)[0]

    def _face(self, det: Detection, box: tuple, crop: Image.Image, probs: np.ndarray) -> Face:
        best = int(np.argmax(probs))
        return Face(box=tuple(int(v) for v in det.box), emotion=self.labels[best], confidence=float(probs[best]),
                    scores={label: float(p) for label, p in zip(self.labels, probs)},
                    detection_score=det.score, crop_box=box, crop=crop)
