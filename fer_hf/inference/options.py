"""`ServeOptions`: what the entry points (scripts/predict.py, space/app.py) take from the environment.

The library reads no environment variable: an entry point calls `ServeOptions.from_environ(os.environ)` once and
passes the values down as arguments.

| variable | what |
|---|---|
| `FER_MODEL` | the model folder, ONNX file or Hub id to serve (default: the best trained folder under outputs/) |
| `FER_OUTPUTS` | where to look for trained folders (default: outputs/ here, then in the clone) |
| `FER_DETECTOR` | auto, yunet, haar or none |
| `FER_YUNET_PATH` | another YuNet ONNX file than the one shipped in fer_hf |
| `FER_DETECT_MAX_SIDE` | the long side photos are shrunk towards for detection (default: the model's, 480) |
| `FER_HF_CACHE` | where a downloaded YuNet is kept (default ~/.cache/fer_hf) |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DETECTORS = ("auto", "yunet", "haar", "none")


@dataclass(frozen=True)
class ServeOptions:
    model: str | None = None
    outputs: str | None = None
    detector: str = "auto"
    yunet_model: str | None = None
    max_side: int | None = None
    cache: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServeOptions:
        """The options set in `environ`; a malformed value is an error naming its variable."""
        get = lambda name: (environ.get(name) or "").strip() or None
        detector = (get("FER_DETECTOR") or "auto").lower()
        if detector not in DETECTORS:
            raise ValueError(f"FER_DETECTOR={detector!r}: expected one of {DETECTORS}.")
        side = get("FER_DETECT_MAX_SIDE")
        if side is not None and not (side.isdigit() and int(side) > 0):
            raise ValueError(f"FER_DETECT_MAX_SIDE={side!r}: expected a positive number of pixels.")
        return cls(model=get("FER_MODEL"), outputs=get("FER_OUTPUTS"), detector=detector,
                   yunet_model=get("FER_YUNET_PATH"), max_side=int(side) if side else None, cache=get("FER_HF_CACHE"))

    @property
    def roots(self) -> list[str] | None:
        """Where to look for trained model folders (None: model_info's default places)."""
        return [self.outputs] if self.outputs else None

    @property
    def detection(self) -> dict:
        """Changes to the model's detection settings (`EmotionRecognizer.from_pretrained(detection=...)`)."""
        return {"max_side": self.max_side} if self.max_side else {}
