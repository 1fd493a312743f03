"""Face detection and FER-style crops: YuNet through OpenCV, Haar cascade as the no-download fallback.

YuNet (Wu et al., "YuNet: A Tiny Millisecond-level Face Detector", MIR 2023; OpenCV Zoo, MIT) runs
through `cv2.FaceDetectorYN` and gives a box, a score and five landmarks (eyes, nose, mouth corners)
per face. Its 232 kB ONNX file ships inside this package (`fer_hf/assets/`, MIT licence in
`LICENSE-yunet.txt`), so faces are found offline with no download; a `path` argument (scripts and the
Space pass FER_YUNET_PATH) points at another copy. `fetch_yunet()` still downloads it (sha256-verified, cached in
`~/.cache/fer_hf`) for an install whose package data was stripped. If YuNet cannot be loaded at all,
`detector="auto"` falls back to OpenCV's bundled Haar cascade (Viola & Jones, CVPR 2001), which gives
no landmarks and misses tilted faces (benchmarks/benchmark_detection.py measures both).

Detection resolution: a photo is shrunk towards `max_side` on its long side (speed), but never by more
than the factor that keeps a `min_face`-pixel face (default 40) at the size the detector still finds
reliably (YuNet ~30 px, Haar ~36 px: measured by the benchmark), and never beyond `MAX_DETECT_SIDE`.

Crops follow the look of FER datasets: a square around the face box with a margin (hair, chin),
clipped to the image; optionally rotated so that the eyes are level (YuNet landmarks only).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import threading
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_URL = f"https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/{YUNET_FILE}"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
MAX_DOWNLOAD_BYTES = 10 * 2**20  # the file is 232,589 bytes; anything far bigger is not it
BUNDLED_YUNET = Path(__file__).resolve().parents[1] / "assets" / YUNET_FILE
MIN_FACE = 40  # px: the smallest face (width, in the photo) detection is tuned to keep
MAX_DETECT_SIDE = 1920  # px: huge photos are still shrunk to this on the long side


class FetchError(OSError):
    """The YuNet model could not be downloaded (offline, unreachable, or a file failing its sha256)."""


@dataclass
class Detection:
    """One face: box (x, y, w, h) in pixels, detector score, five (x, y) landmarks or None (Haar)."""

    box: tuple[int, int, int, int]
    score: float | None  # None: not detected (the whole image taken as the face)
    landmarks: list[tuple[float, float]] | None = None

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_CACHE = Path.home() / ".cache" / "fer_hf"


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Where downloads are kept: `root` (an entry point passes FER_HF_CACHE), else DEFAULT_CACHE."""
    return Path(root).expanduser() if root else DEFAULT_CACHE


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def offline() -> bool:
    """The Hub's offline switch (HF_HUB_OFFLINE, as huggingface_hub read it), set in tests and CI."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def fetch(url: str, dest: Path, sha256: str, timeout: float = 10.0) -> Path:
    """Download `url` to `dest` atomically, keeping it only if its sha256 matches."""
    if offline():
        raise FetchError(f"not downloading {url}: offline mode (HF_HUB_OFFLINE) is set")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise FetchError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes; not the YuNet model")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise FetchError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {sha256}; file discarded")
        os.replace(tmp, dest)
        return dest
    except FetchError:
        raise
    except OSError as err:  # URLError, timeouts, refused connections, disk errors
        raise FetchError(f"cannot download {url}: {err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def yunet_path(path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> Path:
    """The YuNet ONNX file: `path` (the entry points pass FER_YUNET_PATH), the copy shipped in the package, or the
    download cache."""
    if path:
        local = Path(path).expanduser()
        if not local.is_file():
            raise FileNotFoundError(f"YuNet model {str(local)!r} does not exist (from the argument or FER_YUNET_PATH)")
        return local
    if BUNDLED_YUNET.is_file():
        return BUNDLED_YUNET
    cached = cache_dir(cache) / YUNET_FILE
    if cached.is_file() and sha256_file(cached) == YUNET_SHA256:
        return cached
    raise FileNotFoundError(f"the YuNet model shipped with fer_hf ({BUNDLED_YUNET}) is missing from this install; "
                            "reinstall fer-hf, set FER_YUNET_PATH to a copy, or run fer_hf.inference.faces.fetch_yunet()")


def fetch_yunet(url: str = YUNET_URL, timeout: float = 10.0, cache: str | os.PathLike | None = None) -> Path:
    """Download YuNet into the cache (verified by sha256), for installs without the shipped copy."""
    cached = cache_dir(cache) / YUNET_FILE
    if cached.is_file():
        if sha256_file(cached) == YUNET_SHA256:
            return cached
        logger.warning("Cached %s fails its sha256 check; fetching it again.", cached)
        cached.unlink()
    logger.info("Downloading the YuNet face detector from %s", url)
    return fetch(url, cached, YUNET_SHA256, timeout)


def _to_bgr(image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"detector input must be an RGB uint8 HxWx3 image, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb[:, :, ::-1])


def detection_scale(shape: tuple[int, ...], max_side: int, min_scale: float,
                    max_detect_side: int = MAX_DETECT_SIDE) -> float:
    """Scale to detect an HxW photo at: towards `max_side` on the long side, but not below `min_scale`
    (which keeps `MIN_FACE` faces findable) unless the photo would still be over `MAX_DETECT_SIDE`."""
    long_side = max(shape[:2])
    scale = max(max_side / long_side, min_scale)
    return min(1.0, scale, max(max_side, max_detect_side) / long_side)


def _downscale(bgr: np.ndarray, max_side: int, min_scale: float = 0.0,
               max_detect_side: int = MAX_DETECT_SIDE) -> tuple[np.ndarray, float]:
    """Large photos are detected smaller: faster, and faces of `MIN_FACE` px and up survive it."""
    scale = detection_scale(bgr.shape, max_side, min_scale, max_detect_side)
    if scale < 1.0:
        size = (max(1, round(bgr.shape[1] * scale)), max(1, round(bgr.shape[0] * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return bgr, scale


@dataclass(frozen=True)
class DetectorSettings:
    """How a photo is searched for faces (fer_hf.inference.pipeline.PipelineConfig keeps them with the model).

    `max_side`: the photo is shrunk towards it on its long side (docs/decisions.md, "Face detection: YuNet at 0.7,
    photos at 480 px"), but not below the scale that keeps a `min_face`-px face at the size the detector still
    finds, unless it would stay over `max_detect_side`."""

    score_threshold: float = 0.7
    nms_threshold: float = 0.3
    top_k: int = 5000
    max_side: int = 480
    min_face: int = MIN_FACE
    max_detect_side: int = MAX_DETECT_SIDE


class YuNetDetector:
    """YuNet through `cv2.FaceDetectorYN`; one instance is safe to share between server threads."""

    name = "yunet"
    finds_px = 30  # faces narrower than this at the detection scale start to be missed (benchmark)

    def __init__(self, path=None, score_threshold: float | None = None, nms_threshold: float | None = None,
                 max_side: int | None = None, min_face: int | None = None, settings: DetectorSettings | None = None):
        # explicit arguments win over `settings`, which defaults to DetectorSettings()
        s = settings or DetectorSettings()
        self.settings_used = DetectorSettings(
            score_threshold=s.score_threshold if score_threshold is None else score_threshold,
            nms_threshold=s.nms_threshold if nms_threshold is None else nms_threshold, top_k=s.top_k,
            max_side=max_side or s.max_side, min_face=min_face or s.min_face, max_detect_side=s.max_detect_side)
        s = self.settings_used
        self.path = str(yunet_path(path))
        try:
            self.net = cv2.FaceDetectorYN.create(self.path, "", (320, 320), s.score_threshold, s.nms_threshold, s.top_k)
        except cv2.error as err:
            raise ValueError(f"{self.path} is not a YuNet ONNX model OpenCV can load: {err}") from err
        # larger photos are shrunk only as far as keeps a `min_face` face at `finds_px` (1280x720 group photo: 960 px)
        self.max_side, self.min_face = s.max_side, s.min_face
        self.score_threshold, self.nms_threshold = s.score_threshold, s.nms_threshold
        self._lock = threading.Lock()  # the detector keeps its input size as state

    def settings(self) -> dict:
        return {"model": os.path.basename(self.path), "max_side": self.max_side, "min_face": self.min_face,
                "score_threshold": self.score_threshold}

    def detect(self, image) -> list[Detection]:
        """Faces in an RGB image (PIL or HxWx3 uint8), largest first."""
        small, scale = _downscale(_to_bgr(image), self.max_side, self.finds_px / self.min_face,
                                  self.settings_used.max_detect_side)
        with self._lock:
            self.net.setInputSize((small.shape[1], small.shape[0]))
            _, rows = self.net.detect(small)
        out = []
        for row in [] if rows is None else rows:
            x, y, w, h = (float(v) / scale for v in row[:4])
            marks = [(float(row[4 + 2 * i]) / scale, float(row[5 + 2 * i]) / scale) for i in range(5)]
            out.append(Detection((round(x), round(y), round(w), round(h)), float(row[14]), marks))
        return sorted(out, key=lambda d: d.area, reverse=True)


def _rotated(gray: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray | None]:
    """`gray` rotated by `angle` degrees (canvas grown to hold it all) and the matrix back to `gray`'s pixels."""
    if not angle:
        return gray, None
    h, w = gray.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    size = (int(h * sin + w * cos), int(h * cos + w * sin))
    m[0, 2] += size[0] / 2 - w / 2
    m[1, 2] += size[1] / 2 - h / 2
    out = cv2.warpAffine(gray, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out, cv2.invertAffineTransform(m)


def _suppress(boxes: list[tuple[tuple, float]], overlap: float = 0.3) -> list[tuple]:
    """Greedy non-maximum suppression of (box, weight) pairs: the heaviest of overlapping boxes stays."""
    def iou(a, b):
        iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)

    kept = []
    for box, _ in sorted(boxes, key=lambda bw: -bw[1]):
        if all(iou(box, k) < overlap for k in kept):
            kept.append(box)
    return kept


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (ships with opencv-python <5): the fallback when YuNet cannot load.

    On its own the cascade misses faces tilted by more than ~10 degrees and, with its default settings,
    finds faces in gravel, star fields and text (benchmarks/benchmark_detection.py). So it runs on the photo and
    on copies turned by +-20 degrees, and keeps a candidate only if the cascade is confident enough (stage
    weight over `min_weight`) and OpenCV's eye cascade finds `eyes` eyes in its upper part. No landmarks;
    score 1.0."""

    name = "haar"
    finds_px = 36  # the cascade's 24 px window finds faces reliably from about this width (benchmark)

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 3, max_side: int = 640,
                 min_face: int = MIN_FACE, angles: tuple[float, ...] = (0, -20, 20), min_weight: float = 2.0,
                 eyes: int = 2):
        self.cascade, self.eye_cascade = (self._load(f"haarcascade_{name}.xml") for name in ("frontalface_default", "eye"))
        self.scale_factor, self.min_neighbors, self.max_side = scale_factor, min_neighbors, max_side
        self.min_face, self.angles, self.min_weight, self.eyes = min_face, tuple(angles), min_weight, eyes
        self._lock = threading.Lock()

    @staticmethod
    def _load(name: str) -> cv2.CascadeClassifier:
        file = os.path.join(cv2.data.haarcascades, name)
        cascade = cv2.CascadeClassifier(file)
        if cascade.empty():
            raise RuntimeError(f"OpenCV could not load its Haar cascade {file} (opencv-python-headless>=5 dropped it)")
        return cascade

    def settings(self) -> dict:
        return {"scale_factor": self.scale_factor, "min_neighbors": self.min_neighbors, "max_side": self.max_side,
                "min_face": self.min_face, "angles": list(self.angles), "min_weight": self.min_weight, "eyes": self.eyes}

    def _has_eyes(self, face: np.ndarray) -> bool:
        """Eyes in the upper 60% of a candidate, looked for at a fixed 120 px so small faces get a chance."""
        if not self.eyes:
            return True
        top = cv2.resize(face, (120, 120), interpolation=cv2.INTER_LINEAR)[:72]
        return len(self.eye_cascade.detectMultiScale(top, 1.1, 3, minSize=(14, 14), maxSize=(60, 60))) >= self.eyes

    def _candidates(self, gray: np.ndarray, angle: float, side: int) -> list[tuple[tuple, float]]:
        """(box in `gray`'s pixels, stage weight) of the faces found in `gray` turned by `angle`."""
        turned, back = _rotated(gray, angle)
        boxes, _, weights = self.cascade.detectMultiScale3(turned, self.scale_factor, self.min_neighbors,
                                                           minSize=(side, side), outputRejectLevels=True)
        out = []
        for (x, y, w, h), weight in zip(boxes, np.ravel(weights)):
            if weight <= self.min_weight or not self._has_eyes(turned[y:y + h, x:x + w]):
                continue
            cx, cy = x + w / 2, y + h / 2
            if back is not None:  # the box centre back in the unturned photo; the box stays upright
                cx, cy = back @ np.array([cx, cy, 1.0])
            out.append(((cx - w / 2, cy - h / 2, float(w), float(h)), float(weight)))
        return out

    def detect(self, image) -> list[Detection]:
        small, scale = _downscale(_to_bgr(image), self.max_side, self.finds_px / self.min_face)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        side = max(24, round(0.9 * self.min_face * scale))  # a little under min_face (its boxes are ~1.1x wider)
        with self._lock:
            found = [c for angle in self.angles for c in self._candidates(gray, angle, side)]
        out = [Detection(tuple(round(float(v) / scale) for v in box), 1.0, None) for box in _suppress(found)]
        return sorted(out, key=lambda d: d.area, reverse=True)


def make_detector(kind: str | None = "auto", yunet_model: str | os.PathLike | None = None,
                  settings: DetectorSettings | None = None):
    """`"yunet"` (must work), `"haar"`, `"auto"` (YuNet, else Haar with a warning) or None (no detection).
    YuNet is the copy shipped in the package unless `yunet_model` names another; `settings` are YuNet's."""
    if kind is None or str(kind).lower() == "none":
        return None
    kind = str(kind).lower()
    if kind == "yunet":
        return YuNetDetector(yunet_model, settings=settings)
    if kind == "haar":
        return HaarDetector()
    if kind != "auto":
        raise ValueError(f"detector={kind!r}; expected 'auto', 'yunet', 'haar' or None")
    try:
        return YuNetDetector(yunet_model, settings=settings)
    except (OSError, ValueError) as err:
        logger.warning("YuNet unavailable (%s); using OpenCV's Haar cascade instead.", err)
        return HaarDetector()


@dataclass(frozen=True)
class Framing:
    """How a face crop is framed around a detector box: a square of side `scale` x the box's `basis` side
    ("width", or "max": the larger of width and height), centred `shift_x`, `shift_y` of that side from the
    box centre (down and right are positive).

    The old `margin` m is Framing(scale=1 + 2m). The served default is measured (benchmarks/measure_framing.py,
    docs/decisions.md "Framing"): where FER2013's own crops sit around YuNet's boxes."""

    scale: float = 1.4
    shift_x: float = 0.0
    shift_y: float = 0.0
    basis: str = "max"

    def __post_init__(self):
        if not 0.5 <= self.scale <= 4 or abs(self.shift_x) > 1 or abs(self.shift_y) > 1:
            raise ValueError(f"{self}: expected scale in [0.5, 4] and shifts within one box side.")
        if self.basis not in ("width", "max"):
            raise ValueError(f"{self}: basis must be 'width' or 'max'.")

    def side_of(self, w: float, h: float) -> float:
        """The box side the framing is measured in."""
        return w if self.basis == "width" else max(w, h)

    @classmethod
    def from_margin(cls, margin: float) -> Framing:
        return cls(scale=1 + 2 * margin)

    def to_dict(self) -> dict:
        return asdict(self)


# FER2013's own crops around YuNet's boxes (benchmarks/measure_framing.py on 2,000 FER+ train faces: 1.306 box
# widths, centre 0.028 widths below the box's; docs/decisions.md "Framing"). The square-with-margin 0.2 the
# project served before overlapped the training crops at IoU 0.52 on validation faces, this one 0.75.
SERVED_FRAMING = Framing(scale=1.31, shift_x=0.0, shift_y=0.03, basis="width")
def crop_box(box, image_size: tuple[int, int], margin: float | None = None,
             framing: Framing | None = None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the square `framing` (or a square with `margin`; default: SERVED_FRAMING)
    puts around `box`, clipped to the image."""
    framing = framing or (Framing.from_margin(margin) if margin is not None else SERVED_FRAMING)
    x, y, w, h = box
    size = framing.side_of(w, h)
    side = size * framing.scale
    cx, cy = x + w / 2 + framing.shift_x * size, y + h / 2 + framing.shift_y * size
    width, height = image_size
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    right, bottom = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    if right - left < 2 or bottom - top < 2:
        raise ValueError(f"face box {tuple(box)} lies outside the {width}x{height} image")
    return left, top, right, bottom


def eye_angle(landmarks) -> float:
    """Angle in degrees of the line from the image-left eye to the image-right eye (0 = level)."""
    (x0, y0), (x1, y1) = sorted(landmarks[:2])
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def crop_face(image: Image.Image, detection: Detection, margin: float | None = None, align: bool = False,
              framing: Framing | None = None) -> Image.Image:
    """The FER-style crop of one detected face (framed as `crop_box`); with `align`, rotated so the eyes are level."""
    framing = framing or (Framing.from_margin(margin) if margin is not None else SERVED_FRAMING)
    if not (align and detection.landmarks):
        return image.crop(crop_box(detection.box, image.size, framing=framing))
    x, y, w, h = detection.box
    size = framing.side_of(w, h)
    side = size * framing.scale
    theta = math.radians(eye_angle(detection.landmarks))
    cos, sin, half = math.cos(theta), math.sin(theta), side / 2
    # the crop centre, shifted in the rotated face's own frame
    cx = x + w / 2 + (framing.shift_x * cos - framing.shift_y * sin) * size
    cy = y + h / 2 + (framing.shift_x * sin + framing.shift_y * cos) * size
    # Output pixel (u, v) samples the source at centre + R(theta) @ (u - half, v - half).
    coeffs = (cos, -sin, cx - half * cos + half * sin, sin, cos, cy - half * sin - half * cos)
    n = max(2, round(side))
    return image.transform((n, n), Image.AFFINE, coeffs, resample=Image.BICUBIC)
