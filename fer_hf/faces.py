"""Face detection and FER-style crops: YuNet through OpenCV, Haar cascade as the no-download fallback.

YuNet (Wu et al., "YuNet: A Tiny Millisecond-level Face Detector", MIR 2023; OpenCV Zoo, MIT) runs
through `cv2.FaceDetectorYN` and gives a box, a score and five landmarks (eyes, nose, mouth corners)
per face. Its 230 kB ONNX file is taken from, in order: the `path` argument, `FER_YUNET_PATH`, the
cache (`~/.cache/fer_hf`, verified by sha256), or its public home (downloaded once, verified, cached).
Offline (`HF_HUB_OFFLINE=1` or `FER_OFFLINE=1`, or no network) the fetch fails in seconds and
`detector="auto"` falls back to OpenCV's bundled Haar cascade (Viola & Jones, CVPR 2001), which needs
no download but finds fewer faces and gives no landmarks.

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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("FER_HF_CACHE") or os.path.join(base, "fer_hf"))


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def offline() -> bool:
    """The project's offline switches: the Hub's (set in tests and CI) or our own."""
    on = ("1", "true", "yes", "on")
    return any(os.environ.get(k, "").strip().lower() in on for k in ("HF_HUB_OFFLINE", "FER_OFFLINE"))


def fetch(url: str, dest: Path, sha256: str, timeout: float = 10.0) -> Path:
    """Download `url` to `dest` atomically, keeping it only if its sha256 matches."""
    if offline():
        raise FetchError(f"not downloading {url}: offline mode (HF_HUB_OFFLINE/FER_OFFLINE) is set")
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


def yunet_path(path: str | os.PathLike | None = None, url: str = YUNET_URL, timeout: float = 10.0) -> Path:
    """The YuNet ONNX file: `path`, `$FER_YUNET_PATH`, the verified cache, or a verified download."""
    path = path or os.environ.get("FER_YUNET_PATH")
    if path:
        local = Path(path).expanduser()
        if not local.is_file():
            raise FileNotFoundError(f"YuNet model {str(local)!r} does not exist (from the argument or FER_YUNET_PATH)")
        return local
    cached = cache_dir() / YUNET_FILE
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


def _downscale(bgr: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Large photos are detected at `max_side`: faster, and faces big enough to classify survive it."""
    scale = min(1.0, max_side / max(bgr.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(bgr.shape[1] * scale)), max(1, round(bgr.shape[0] * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return bgr, scale


class YuNetDetector:
    """YuNet through `cv2.FaceDetectorYN`; one instance is safe to share between server threads."""

    name = "yunet"

    def __init__(self, path=None, score_threshold: float = 0.6, nms_threshold: float = 0.3, max_side: int | None = None):
        self.path = str(yunet_path(path))
        try:
            self.net = cv2.FaceDetectorYN.create(self.path, "", (320, 320), score_threshold, nms_threshold, 5000)
        except cv2.error as err:
            raise ValueError(f"{self.path} is not a YuNet ONNX model OpenCV can load: {err}") from err
        # 480 px on the long side: a 640x480 frame is detected in 16 ms instead of 30 at 960 (benchmark); 320 px
        # (10 ms) lost faces under ~1/8 of the long side, 480 px only those under ~1/10. Raise it for group photos.
        self.max_side = max_side or int(os.environ.get("FER_DETECT_MAX_SIDE", "480"))
        self._lock = threading.Lock()  # the detector keeps its input size as state

    def detect(self, image) -> list[Detection]:
        """Faces in an RGB image (PIL or HxWx3 uint8), largest first."""
        small, scale = _downscale(_to_bgr(image), self.max_side)
        with self._lock:
            self.net.setInputSize((small.shape[1], small.shape[0]))
            _, rows = self.net.detect(small)
        out = []
        for row in [] if rows is None else rows:
            x, y, w, h = (float(v) / scale for v in row[:4])
            marks = [(float(row[4 + 2 * i]) / scale, float(row[5 + 2 * i]) / scale) for i in range(5)]
            out.append(Detection((round(x), round(y), round(w), round(h)), float(row[14]), marks))
        return sorted(out, key=lambda d: d.area, reverse=True)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade: ships with opencv-python (<5), no landmarks, score 1.0."""

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, max_side: int = 640):
        file = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(file)
        if self.cascade.empty():
            raise RuntimeError(f"OpenCV could not load its Haar cascade {file} (opencv-python-headless>=5 dropped it)")
        self.scale_factor, self.min_neighbors, self.max_side = scale_factor, min_neighbors, max_side
        self._lock = threading.Lock()

    def detect(self, image) -> list[Detection]:
        small, scale = _downscale(_to_bgr(image), self.max_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        side = max(20, min(gray.shape) // 20)  # faces under 5% of the short side are too small to classify
        with self._lock:
            boxes = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors, minSize=(side, side))
        out = [Detection(tuple(round(float(v) / scale) for v in box), 1.0, None) for box in boxes]
        return sorted(out, key=lambda d: d.area, reverse=True)


def make_detector(kind: str | None = "auto", yunet_model: str | os.PathLike | None = None):
    """`"yunet"` (must work), `"haar"`, `"auto"` (YuNet, else Haar with a warning) or None (no detection)."""
    if kind is None or str(kind).lower() == "none":
        return None
    kind = str(kind).lower()
    if kind == "yunet":
        return YuNetDetector(yunet_model)
    if kind == "haar":
        return HaarDetector()
    if kind != "auto":
        raise ValueError(f"detector={kind!r}; expected 'auto', 'yunet', 'haar' or None")
    try:
        return YuNetDetector(yunet_model)
    except (OSError, ValueError) as err:
        logger.warning("YuNet unavailable (%s); using OpenCV's Haar cascade instead.", err)
        return HaarDetector()


def crop_box(box, image_size: tuple[int, int], margin: float = 0.2) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a square around `box` grown by `margin` per side, clipped to the image."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
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


def crop_face(image: Image.Image, detection: Detection, margin: float = 0.2, align: bool = False) -> Image.Image:
    """The FER-style crop of one detected face; with `align`, rotated so the eyes are level."""
    if not (align and detection.landmarks):
        return image.crop(crop_box(detection.box, image.size, margin))
    x, y, w, h = detection.box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy, theta = x + w / 2, y + h / 2, math.radians(eye_angle(detection.landmarks))
    cos, sin, half = math.cos(theta), math.sin(theta), side / 2
    # Output pixel (u, v) samples the source at centre + R(theta) @ (u - half, v - half).
    coeffs = (cos, -sin, cx - half * cos + half * sin, sin, cos, cy - half * sin - half * cos)
    n = max(2, round(side))
    return image.transform((n, n), Image.AFFINE, coeffs, resample=Image.BICUBIC)
