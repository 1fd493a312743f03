"""The onnxruntime backend: an exported ONNX model (scripts/export_onnx.py) as a pixel_values -> logits callable.

    rec = EmotionRecognizer.from_pretrained("model.onnx")   # or a folder holding model.onnx

The ONNX file carries everything inference needs in its `metadata_props` under the key `fer_hf`
(its `PipelineConfig`: label names, image size, mean, std, calibration temperature, framing, detection), so no
config.json or torch network is loaded. Only the network changes: `fer_hf.inference.recognizer.EmotionRecognizer`
takes an `OnnxClassifier` in place of the PyTorch model and keeps detection, cropping, preprocessing, TTA and the
softmax its own, so a face gets the same emotion from either backend. This module does not import
fer_hf.inference.recognizer (the recognizer imports it: one direction only). onnxruntime and onnx are imported
lazily: importing fer_hf never requires them.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from ..models.run_folder import WEIGHT_FILES
from .pipeline import PipelineConfig

METADATA_KEY = "fer_hf"


def onnx_file(model_id_or_dir) -> str | None:
    """The ONNX file to run for `model_id_or_dir`: a `.onnx` path, or a folder with model.onnx and no torch weights."""
    name = os.fspath(model_id_or_dir)
    if name.endswith(".onnx"):
        if not os.path.isfile(name):
            raise FileNotFoundError(f"ONNX model {name!r} does not exist")
        return name
    if os.path.isdir(name) and os.path.isfile(os.path.join(name, "model.onnx")) \
            and not any(os.path.isfile(os.path.join(name, w)) for w in WEIGHT_FILES):
        return os.path.join(name, "model.onnx")
    return None


def read_metadata(path: str) -> dict:
    """The `fer_hf` metadata of an exported model: its `PipelineConfig.to_dict()` (labels, image_size, mean, std,
    calibration_temperature, framing, detector, ...) and its architecture."""
    import onnx

    model = onnx.load(path, load_external_data=False)  # the header only; weights are not needed here
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{path} has no '{METADATA_KEY}' metadata: export it with scripts/export_onnx.py")
    return json.loads(props[METADATA_KEY])


class OnnxClassifier:
    """pixel_values (N x 3 x H x W float) -> logits, through one onnxruntime session."""

    def __init__(self, path: str, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One intra-op thread by default: a server runs one request per thread, and on small machines
        # more threads per request fight each other and the detector for the same cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.path, self.meta = path, read_metadata(path)
        self.pipeline = PipelineConfig.from_dict(self.meta)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(pixel_values.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: x})[0])
