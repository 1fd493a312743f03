"""`PipelineConfig`: every setting of the served pipeline, photo in, emotions out, in one dataclass.

Detection (YuNet's thresholds, the size a photo is detected at), the crop's framing, the classifier's input
(size, mean, std, grey or colour), its calibration temperature and its labels. It is written once: the model folder's
config.json keeps the serving part under `fer_pipeline` (labels, size, mean, std and temperature are there
already), an ONNX export carries the whole of it in its metadata, and the static Space's preprocessing.json is
it plus the page's own settings. `EmotionRecognizer`, the Gradio Space and the static page's build read it from
there, so all three detect and crop identically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

from .faces import SERVED_FRAMING, DetectorSettings, Framing

# The Gradio Space's and the static page's upload limits
MAX_BYTES, MAX_PIXELS = 20 * 2**20, 40_000_000


@dataclass(frozen=True)
class PipelineConfig:
    labels: tuple[str, ...]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    temperature: float | None = None
    grayscale: bool = False  # read every face in grey (a model trained on grey faces only: FER2013, FER+)
    framing: Framing = SERVED_FRAMING
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS

    KEY: ClassVar[str] = "fer_pipeline"  # config.json's entry for the serving settings
    TEMPERATURE_KEY: ClassVar[str] = "calibration_temperature"

    def to_dict(self) -> dict:
        """Everything, as plain JSON (ONNX metadata, preprocessing.json)."""
        out = asdict(self)
        out[self.TEMPERATURE_KEY] = out.pop("temperature")
        out["labels"], out["mean"], out["std"] = list(self.labels), list(self.mean), list(self.std)
        return out

    def serving_entry(self) -> dict:
        """What config.json keeps under `fer_pipeline`: the settings a model config does not already hold."""
        return {"framing": asdict(self.framing), "detector": asdict(self.detector), "grayscale": self.grayscale}

    @classmethod
    def from_dict(cls, d: dict) -> PipelineConfig:
        """From `to_dict`'s JSON (an ONNX export's metadata); framing and detection default where an older
        export has none."""
        return cls(labels=tuple(d["labels"]), image_size=int(d["image_size"]), mean=tuple(d["mean"]),
                   std=tuple(d["std"]), temperature=d.get(cls.TEMPERATURE_KEY), grayscale=bool(d.get("grayscale", False)),
                   framing=Framing(**d["framing"]) if d.get("framing") else SERVED_FRAMING,
                   detector=DetectorSettings(**d["detector"]) if d.get("detector") else DetectorSettings(),
                   max_bytes=int(d.get("max_bytes", MAX_BYTES)), max_pixels=int(d.get("max_pixels", MAX_PIXELS)))

    @classmethod
    def from_model_config(cls, config) -> PipelineConfig:
        """From a transformers config (the model folder's config.json)."""
        pre = config.pretrained_cfg
        serving = getattr(config, cls.KEY, None) or {}
        temperature = getattr(config, cls.TEMPERATURE_KEY, None)
        return cls(labels=tuple(config.id2label[i] for i in range(config.num_labels)),
                   image_size=int(pre["input_size"][-1]), mean=tuple(pre["mean"]), std=tuple(pre["std"]),
                   temperature=float(temperature) if isinstance(temperature, (int, float)) and temperature > 0 else None,
                   grayscale=bool(serving.get("grayscale", False)),
                   framing=Framing(**serving["framing"]) if serving.get("framing") else SERVED_FRAMING,
                   detector=DetectorSettings(**serving["detector"]) if serving.get("detector") else DetectorSettings())

    def with_detector(self, **changes) -> PipelineConfig:
        """A copy with some detection settings changed (e.g. `max_side` from FER_DETECT_MAX_SIDE at an entry point)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, detector=replace(self.detector, **changes)) if changes else self
