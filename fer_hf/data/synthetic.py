"""Embedded demo data: procedurally drawn cartoon faces with facial expressions.

Lets the whole pipeline (loading, label harmonisation, training, evaluation) run
offline without downloading FER2013 / RAF-DB / AffectNet. Each synthetic source
mimics the image size, colour mode, label names/order and splits of its real
counterpart. Expression is carried only by mouth, brows and eyes (plus a nose
wrinkle for disgust); everything else (pose, skin, hair, background, lighting,
noise, occluders) is random nuisance, so a model has to look at the features.
"""

from __future__ import annotations

import functools
import io

import datasets
import numpy as np
from PIL import Image, ImageDraw

SOURCE_NAMES = ("synthetic_fer", "synthetic_raf", "synthetic_affectnet")
CANONICAL = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")

_SOURCES = {
    "synthetic_fer": {"size": 48, "color": False, "splits": ("train", "validation"),
                          "names": ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")},
    "synthetic_raf": {"size": 100, "color": True, "splits": ("train",),
                          "names": ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")},
    "synthetic_affectnet": {"size": 128, "color": True, "splits": ("train", "validation"),
                                "names": ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger",
                                       "contempt")},
}
# Source label name -> what to draw. Only used for drawing; harmonisation lives elsewhere.
_TO_DRAWN = {**{e: e for e in CANONICAL}, "angry": "anger", "happy": "happiness", "sad": "sadness",
             "contempt": "contempt"}

# Expression parameters in units of the face half-height b (eye_open is a factor).
_NEUTRAL = {"curve": 0.0, "open": 0.0, "width": 0.30, "skew": 0.0, "lip_raise": 0.0, "teeth": 0.0,
                "brow_up": 0.0, "brow_tilt": 0.0, "brow_arch": 0.02, "eye_open": 1.0, "wrinkle": 0.0}
# Full-intensity offsets from neutral; brow_tilt > 0 raises the inner brow ends.
_DELTAS = {
    "neutral": {},
    "happiness": {"curve": 0.22, "width": 0.08, "eye_open": -0.25, "brow_up": 0.02},
    "sadness": {"curve": -0.15, "width": -0.05, "brow_tilt": 0.18, "brow_up": 0.02, "eye_open": -0.2},
    "anger": {"curve": -0.03, "width": -0.07, "brow_tilt": -0.22, "brow_up": -0.06, "eye_open": -0.45},
    "surprise": {"open": 0.30, "width": -0.15, "brow_up": 0.15, "brow_arch": 0.06, "eye_open": 0.6},
    "fear": {"open": 0.11, "width": 0.10, "curve": -0.04, "brow_up": 0.09, "brow_tilt": 0.16, "eye_open": 0.55},
    "disgust": {"lip_raise": 0.16, "curve": -0.06, "brow_up": -0.06, "brow_tilt": -0.08, "eye_open": -0.5,
                    "wrinkle": 1.0, "teeth": 1.0},
    "contempt": {"skew": 0.14, "eye_open": -0.1, "brow_tilt": -0.03},
}
# Per-sample jitter (std) so low-intensity samples overlap a little across classes.
_JITTER = {"curve": 0.015, "width": 0.02, "brow_up": 0.015, "brow_tilt": 0.02, "brow_arch": 0.01, "eye_open": 0.07}

_SKIN = np.array([(255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66),
                  (141, 85, 36), (92, 56, 36)], float)
_HAIR = ((20, 15, 10), (60, 40, 25), (110, 75, 40), (200, 170, 110), (150, 60, 25), (160, 160, 160))
_IRIS = ((60, 35, 20), (40, 70, 110), (50, 80, 50), (25, 20, 15))


def _rgb(c, k=1.0):
    """Colour tuple, optionally darkened by factor k."""
    return tuple(min(255, max(0, int(v * k))) for v in c[:3])


class _Pen:
    """ImageDraw subset that rotates every point about the face centre.

    Rotating coordinates instead of a rendered face layer avoids an RGBA
    rotate + composite per image (the dominant cost). Ellipses become polygons.
    """

    def __init__(self, img: Image.Image, cx: float, cy: float, degrees: float):
        self.raw, self.cx, self.cy = ImageDraw.Draw(img), cx, cy  # raw: unrotated
        rad = np.deg2rad(degrees)
        self.cos, self.sin = np.cos(rad), np.sin(rad)

    def _pts(self, x, y):
        x, y = np.asarray(x, float) - self.cx, np.asarray(y, float) - self.cy
        return list(zip(self.cx + x * self.cos - y * self.sin, self.cy + x * self.sin + y * self.cos))

    @staticmethod
    @functools.lru_cache(maxsize=64)  # angles repeat (0-360, eye lids, nose): cache the trig
    def _unit_arc(start, end, n):
        th = np.deg2rad(np.linspace(start, end, n))
        return np.cos(th), np.sin(th)

    def _arc_pts(self, box, start, end, n=32):
        cos, sin = self._unit_arc(start, end, n)
        (x0, y0, x1, y1) = box
        return (x0 + x1) / 2 + (x1 - x0) / 2 * cos, (y0 + y1) / 2 + (y1 - y0) / 2 * sin

    def polygon(self, xy, fill):
        self.raw.polygon(self._pts(*zip(*xy)), fill=fill)

    def line(self, xy, fill, width):
        self.raw.line(self._pts(*zip(*xy)), fill=fill, width=width, joint="curve")

    def ellipse(self, box, fill):
        self.raw.polygon(self._pts(*self._arc_pts(box, 0, 360)), fill=fill)

    def chord(self, box, start, end, fill):
        self.raw.polygon(self._pts(*self._arc_pts(box, start, end)), fill=fill)

    def arc(self, box, start, end, fill, width):
        self.raw.line(self._pts(*self._arc_pts(box, start, end, 16)), fill=fill, width=width, joint="curve")

    def rectangle(self, box, fill):
        x0, y0, x1, y1 = box
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill)


def _background(rng: np.random.Generator, c: int) -> Image.Image:
    """Solid colour, linear gradient or blotchy noise texture, at canvas size c."""
    kind = rng.integers(3)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == 0:
        return Image.new("RGB", (c, c), tuple(int(v) for v in c1))
    if kind == 1:
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:16, 0:16] / 15.0  # smooth, so a small ramp upsampled is exact enough
        t = xx * np.cos(theta) + yy * np.sin(theta)
        t = (t - t.min()) / (np.ptp(t) + 1e-9)
        ramp = Image.fromarray((c1 + (c2 - c1) * t[..., None]).astype(np.uint8), "RGB")
        return ramp.resize((c, c), Image.Resampling.BILINEAR)
    k = int(rng.integers(3, 12))
    small = rng.integers(0, 256, (k, k, 3)).astype(np.uint8)
    return Image.fromarray(small, "RGB").resize((c, c), Image.Resampling.BILINEAR)


def _sample_nuisance(rng: np.random.Generator, c: int) -> dict:
    """Everything that must NOT carry the label: pose, colours, lighting, occluder."""
    b = c * rng.uniform(0.33, 0.40)  # large faces: at 48 px the mouth must span more than a few pixels
    t = rng.uniform(0, len(_SKIN) - 1)
    i = min(int(t), len(_SKIN) - 2)
    skin = _SKIN[i] + (_SKIN[i + 1] - _SKIN[i]) * (t - i) + rng.normal(0, 6, 3)
    has_hair = rng.random() < 0.75
    return {
        "b": b, "a": b * rng.uniform(0.72, 0.9), "angle": rng.uniform(-15, 15),
        "cx": c / 2 + rng.uniform(-0.07, 0.07) * c, "cy": c / 2 + rng.uniform(-0.05, 0.08) * c,
        "skin": skin, "hair": _HAIR[rng.integers(len(_HAIR))] if has_hair else None,
        "bangs": int(rng.integers(215, 236)) if has_hair and rng.random() < 0.6 else None,
        "iris": _IRIS[rng.integers(len(_IRIS))], "brow_w": rng.uniform(0.045, 0.075),
        "shirt": rng.integers(0, 256, 3), "bg": _background(rng, c),
        "occluder": rng.choice(["glasses", "side"]) if rng.random() < 0.1 else None,
        "occ_color": rng.integers(0, 256, 3), "occ_u": rng.uniform(0, 1, 3),
        "flip": rng.random() < 0.5, "contrast": rng.uniform(0.7, 1.25), "bright": rng.uniform(-30, 30),
        "noise": rng.uniform(0, 10), "noise_seed": int(rng.integers(2**32)),
    }


def _sample_expression(emotion: str, rng: np.random.Generator) -> dict:
    """Expression parameters: neutral + intensity * emotion offset + jitter."""
    delta = dict(_DELTAS[emotion])
    # Optional variants: open/toothy smile, bared-teeth anger, grimacing fear.
    if emotion == "happiness" and rng.random() < 0.5:
        delta.update(open=0.14, teeth=1.0)
    elif emotion == "anger" and rng.random() < 0.35:
        delta.update(open=0.07, teeth=1.0)
    elif emotion == "fear" and rng.random() < 0.5:
        delta.update(teeth=1.0)
    k = rng.uniform(0.55, 1.0)  # weaker expressions make some samples harder, none invisible at 48 px
    p = {key: v + k * delta.get(key, 0.0) + rng.normal(0, _JITTER.get(key, 0.0))
         for key, v in _NEUTRAL.items()}
    p["open"] = max(p["open"], 0.0)
    p["eye_open"] = max(p["eye_open"], 0.3)
    p["teeth"] = delta.get("teeth", 0.0)
    return p


def _draw_head(d: _Pen, g: dict) -> None:
    """Shoulders, neck, back hair, ears, face oval and optional bangs."""
    cx, cy, a, b = g["cx"], g["cy"], g["a"], g["b"]
    d.ellipse([cx - 2.2 * a, cy + 1.25 * b, cx + 2.2 * a, cy + 3.5 * b], fill=_rgb(g["shirt"]))
    d.rectangle([cx - 0.45 * a, cy + 0.5 * b, cx + 0.45 * a, cy + 1.5 * b], fill=_rgb(g["skin"], 0.85))
    if g["hair"] is not None:
        d.ellipse([cx - 1.15 * a, cy - 1.12 * b, cx + 1.15 * a, cy + 0.55 * b], fill=_rgb(g["hair"]))
    for s in (-1, 1):
        d.ellipse([cx + s * a - 0.12 * b, cy - 0.2 * b, cx + s * a + 0.12 * b, cy + 0.12 * b],
                  fill=_rgb(g["skin"], 0.92))
    d.ellipse([cx - a, cy - b, cx + a, cy + b], fill=_rgb(g["skin"]))
    if g["bangs"] is not None:  # chord stays above the highest brow position
        d.chord([cx - a, cy - b, cx + a, cy + b], g["bangs"], 540 - g["bangs"], fill=_rgb(g["hair"]))


def _draw_eyes_brows(d: _Pen, g: dict, p: dict) -> None:
    """Eyes (openness) and brows (height, inner-end tilt, arch)."""
    cx, a, b = g["cx"], g["a"], g["b"]
    ey = g["cy"] - 0.10 * b
    rx, ry, r = 0.13 * b, 0.08 * b * p["eye_open"], 0.075 * b
    dark = _rgb(g["skin"], 0.3)
    lw = max(1, round(0.03 * b))
    for s in (-1, 1):
        ex = cx + s * 0.40 * a
        d.ellipse([ex - rx, ey - ry, ex + rx, ey + ry], fill=(245, 245, 240))
        ri, pr = min(r, ry), min(0.035 * b, ry)  # iris squashed by narrowed lids
        d.ellipse([ex - r, ey - ri, ex + r, ey + ri], fill=_rgb(g["iris"]))
        d.ellipse([ex - 0.035 * b, ey - pr, ex + 0.035 * b, ey + pr], fill=(8, 8, 8))
        d.arc([ex - rx, ey - ry, ex + rx, ey + ry], 180, 360, fill=dark, width=lw)
        base = ey - (0.22 + p["brow_up"]) * b
        t = np.linspace(0, 1, 9)
        xs = ex - s * 0.17 * b + s * 0.36 * b * t
        ys = base - p["brow_tilt"] * b * (0.5 - t) - 4 * p["brow_arch"] * b * t * (1 - t)
        d.line(list(zip(xs, ys)), fill=dark, width=max(1, round(g["brow_w"] * b)))


def _draw_nose_mouth(d: _Pen, g: dict, p: dict) -> None:
    """Nose (with disgust wrinkles) and a mouth built from an upper and a lower lip curve."""
    cx, cy, b = g["cx"], g["cy"], g["b"]
    lw = max(1, round(0.045 * b))
    shade = _rgb(g["skin"], 0.6)
    d.arc([cx - 0.08 * b, cy + 0.1 * b, cx + 0.08 * b, cy + 0.24 * b], 20, 160, fill=shade, width=lw)
    for i in range(round(3 * min(p["wrinkle"], 1.0))):
        y = cy - 0.02 * b + 0.055 * i * b
        d.line([(cx - 0.09 * b, y + 0.02 * b), (cx, y - 0.01 * b), (cx + 0.09 * b, y + 0.02 * b)],
               fill=shade, width=lw)
    t = np.linspace(-1, 1, 25)
    x = cx + t * p["width"] * b
    base = cy + 0.45 * b + p["curve"] * b * (0.5 - t**2) - p["skew"] * b * np.clip(t, 0, None) ** 2
    half = 0.5 * p["open"] * b * np.sqrt(1 - t**2)
    snarl = p["lip_raise"] * b * np.clip(1 - ((t - 0.35) / 0.5) ** 2, 0, None)  # one-sided
    upper, lower = base - half - snarl, base + half
    lip = _rgb(g["skin"] * np.array([0.55, 0.35, 0.35]))
    if (lower - upper).max() < 0.02 * b:
        d.line(list(zip(x, base)), fill=lip, width=lw)
        return
    ring = list(zip(x, upper)) + list(zip(x[::-1], lower[::-1]))
    d.polygon(ring, fill=(45, 12, 18))
    if p["teeth"] > 0:
        tooth = upper + np.minimum(lower - upper, 0.07 * b)
        d.polygon(list(zip(x, upper)) + list(zip(x[::-1], tooth[::-1])), fill=(240, 238, 228))
    d.line(ring + ring[:1], fill=lip, width=lw)


def _draw_occluder(d: _Pen, g: dict) -> None:
    """~10% of faces: sunglasses or a block entering from one side (in image, not face, coordinates).

    The block stops 0.3 half-widths from the face centre so the mouth is never fully hidden.
    """
    cx, cy, a, b, u = g["cx"], g["cy"], g["a"], g["b"], g["occ_u"]
    if g["occluder"] == "glasses":
        ey, dark = cy - 0.10 * b, _rgb(g["occ_color"], 0.25)
        for s in (-1, 1):
            ex = cx + s * 0.40 * a
            d.ellipse([ex - 0.2 * b, ey - 0.14 * b, ex + 0.2 * b, ey + 0.14 * b], fill=dark)
        d.line([(cx - 0.2 * a, ey), (cx + 0.2 * a, ey)], fill=dark, width=max(1, round(0.04 * b)))
    elif g["occluder"] == "side":
        left = u[1] < 0.5
        edge = cx + (-1 if left else 1) * (0.3 + 0.8 * u[0]) * a
        x0, x1 = (-b, edge) if left else (edge, cx + 3 * b)
        y0 = cy - b + u[2] * b
        d.raw.rectangle([x0, y0, x1, y0 + b], fill=_rgb(g["occ_color"]))


def _render(emotion: str, nuis_rng: np.random.Generator, expr_rng: np.random.Generator,
            size: int, color: bool) -> Image.Image:
    """Draw one face; nuisance and expression come from separate generators so either can be held fixed."""
    ss = max(2, -(-144 // size))  # supersample (canvas >= 144 px) so thin lines stay anti-aliased
    c = size * ss
    g = _sample_nuisance(nuis_rng, c)
    p = _sample_expression(emotion, expr_rng)
    canvas = g["bg"]
    d = _Pen(canvas, g["cx"], g["cy"], g["angle"])
    _draw_head(d, g)
    _draw_eyes_brows(d, g, p)
    _draw_nose_mouth(d, g, p)
    _draw_occluder(d, g)
    img = canvas.reduce(ss)  # box-filter downsample: plain SSAA, much faster than LANCZOS
    if g["flip"]:  # also mirrors the one-sided disgust snarl / contempt smirk
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if not color:
        img = img.convert("L")
    arr = np.asarray(img, np.float32)
    # Luminance-only sensor noise (one plane broadcast over channels): half the cost of RGB noise.
    noise = np.random.default_rng(g["noise_seed"]).standard_normal(arr.shape[:2], dtype=np.float32)
    noise = noise if arr.ndim == 2 else noise[..., None]
    arr = (arr - 128.0) * g["contrast"] + (128.0 + g["bright"]) + g["noise"] * noise
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB" if color else "L")


def _draw(emotion: str, rng: np.random.Generator, size: int, color: bool) -> Image.Image:
    seeds = rng.integers(0, 2**63, size=2)
    return _render(emotion, np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1]), size, color)


def draw_face(emotion: str, rng: np.random.Generator, size: int = 96, color: bool = True) -> Image.Image:
    """One face of canonical emotion `emotion` (one of the 7 canonical names), RGB if color else mode 'L'."""
    if emotion not in CANONICAL:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {CANONICAL}")
    return _draw(emotion, rng, size, color)


def _encode(img: Image.Image) -> dict:
    """Encode ourselves instead of letting the Image feature do it (PNG level 6: the main cost).

    Colour sources are JPEG like real RAF-DB/AffectNet (q=95, ~10x faster than PNG on noisy
    pixels); grayscale stays lossless PNG (tiny at 48x48).
    """
    buf = io.BytesIO()
    if img.mode == "L":
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format="JPEG", quality=95)
    return {"bytes": buf.getvalue(), "path": None}


def _count(label: str, n_per_class: int, split: str) -> int:
    n = n_per_class if split == "train" else max(1, n_per_class // 5)
    return max(1, n // 2) if label == "contempt" else n  # contempt is rarer, as in AffectNet


def make_source(name: str, n_per_class: int = 200, seed: int = 0) -> datasets.DatasetDict:
    """One synthetic source in the shape of a real dataset (size, mode, label names/order, splits)."""
    if name not in _SOURCES:
        raise ValueError(f"unknown source {name!r}; expected one of {SOURCE_NAMES}")
    spec = _SOURCES[name]
    names = list(spec["names"])
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    out = {}
    for split_idx, split in enumerate(spec["splits"]):
        # Seed mixes in source and split so they never share faces even with equal `seed`.
        rng = np.random.default_rng([seed, SOURCE_NAMES.index(name), split_idx])
        counts = [_count(label, n_per_class, split) for label in names]
        labels = rng.permutation(np.repeat(np.arange(len(names)), counts)).tolist()
        images = [_encode(_draw(_TO_DRAWN[names[i]], rng, spec["size"], spec["color"])) for i in labels]
        out[split] = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    return datasets.DatasetDict(out)


def load_synthetic(n_per_class: int = 200, seed: int = 0) -> dict[str, datasets.DatasetDict]:
    """All three sources: {name: make_source(name, ...)} with different derived seeds per source."""
    return {name: make_source(name, n_per_class, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
            for i, name in enumerate(SOURCE_NAMES)}
