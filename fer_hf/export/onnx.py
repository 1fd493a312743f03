"""ONNX export of a trained model (fp32, optionally dynamic int8), with its checks: parity, accuracy, latency.

The timm network inside the TimmWrapper goes through timm's `onnx_export` (the TorchScript exporter, opset 17,
dynamic batch axis, constant folding, `onnx.checker`). The file carries the model's `PipelineConfig` (labels,
image size, mean, std, calibration temperature, framing, detection settings, upload limits) and its architecture
in `metadata_props`, so `EmotionRecognizer.from_pretrained("model.onnx")` needs nothing else. `export_and_check`
then compares the ONNX probabilities with PyTorch's on synthetic faces or a dataset's validation split.
scripts/export_onnx.py is the command.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

import numpy as np
import torch

from ..data.labels import CLASSES
from ..data.transforms import FerCollator, FerTransform
from ..inference.onnx_backend import METADATA_KEY, OnnxClassifier
from ..inference.pipeline import PipelineConfig


class ParityError(ValueError):
    """The fp32 ONNX file's probabilities differ from PyTorch's by more than the tolerance."""


class LogitsOnly(torch.nn.Module):
    """The wrapped timm network with a plain tensor output (exporters want tensors, not ModelOutputs)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def export(model, path: str, image_size: int, opset: int = 17) -> str:
    """Write `path` (checked by onnx.checker); returns the exporter used."""
    from timm.utils.onnx import onnx_export

    # The TorchScript exporter, never dynamo: vit_program reads the blocks by the node names it gives
    # ("/blocks.0/attn/qkv/..."). onnx_export puts the wrapper in eval mode: the exporter restores the wrapper's
    # mode afterwards, recursively, and one left in training mode would put BatchNorm/dropout back into training.
    onnx_export(LogitsOnly(model), path, example_input=torch.randn(2, 3, image_size, image_size), opset=opset,
                input_names=["pixel_values"], output_names=["logits"], check=True)
    return "torchscript"


def write_metadata(path: str, meta: dict) -> None:
    """Store the inference settings inside the ONNX file itself (one file to ship)."""
    import onnx

    model = onnx.load(path)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(model, path)


def export_files(model, output: str, quantize: str | None = None, temperature: float | None = None,
                 opset: int = 17, reduce_range: bool = False, per_channel: bool = False) -> tuple[str, dict]:
    """Write the fp32 ONNX file (and `<output>.int8.onnx`), with inference metadata; (exporter, {kind: path}).
    `temperature`, when given, replaces the one in the model's config."""
    pipeline = PipelineConfig.from_model_config(model.config)
    if temperature is not None:
        pipeline = replace(pipeline, temperature=temperature)
    meta = {**pipeline.to_dict(), "architecture": model.config.architecture}
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    exporter = export(model, output, pipeline.image_size, opset)
    model.eval()  # the parity check compares inference with inference
    write_metadata(output, meta)
    paths = {"fp32": output}
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        paths["int8"] = output.removesuffix(".onnx") + ".int8.onnx"
        # reduce_range: 7-bit weights. x86 kernels without VNNI multiply u8 activations by s8 weights with
        # vpmaddubsw, whose int16 pair sums saturate with 8-bit weights; 7-bit weights cannot saturate, so
        # every CPU (and onnxruntime-web's wasm build, which never saturates) then computes the same logits.
        # per_channel: a scale per output channel, which wins back much of what the 8th bit gave.
        quantize_dynamic(output, paths["int8"], weight_type=QuantType.QInt8, reduce_range=reduce_range,
                         per_channel=per_channel)
        write_metadata(paths["int8"], meta)
    return exporter, paths


def sample_images(data: str, n: int, seed: int = 0):
    """(images, canonical label ids): synthetic faces, or the validation split of a dataset spec."""
    if data == "synthetic":
        from ..data.synthetic import draw_face

        rng = np.random.default_rng(seed)
        labels = [i % len(CLASSES) for i in range(n)]
        return [draw_face(CLASSES[i], rng, size=96) for i in labels], labels
    from ..data.sources import DataArguments, build_datasets

    ds = build_datasets(DataArguments(datasets=[data], max_eval_samples=n), seed=seed)["validation"]
    return list(ds["image"]), list(ds["label"])


def batches(images, pipeline: PipelineConfig, size: int = 50):
    """Normalised pixel_values batches, through the evaluation transform and collator (grey where the model reads grey)."""
    transform = FerTransform(pipeline.image_size, train=False)
    collator = FerCollator(pipeline.mean, pipeline.std, pipeline.image_size, pipeline.grayscale)
    for i in range(0, len(images), size):
        yield collator.normalise(torch.stack([transform.one(im) for im in images[i:i + size]]))


def latency_ms(fn, x, runs: int = 30) -> float:
    """Median milliseconds of `fn(x)` after a warm-up call."""
    fn(x)  # warm-up: first call allocates
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def evaluate(model, paths: dict, images, labels, pipeline: PipelineConfig) -> dict:
    """Probabilities of PyTorch and every ONNX file on the same batches; parity, accuracy, latency."""
    runners = {"torch": lambda x: model(pixel_values=x).logits}
    runners.update({name: OnnxClassifier(p) for name, p in paths.items()})
    torch.set_num_threads(1)  # the same single thread for every backend: a fair latency comparison
    probs = {name: [] for name in runners}
    with torch.inference_mode():
        for x in batches(images, pipeline):
            for name, run in runners.items():
                probs[name].append(run(x).float().softmax(-1).numpy())
        one = next(batches(images[:1], pipeline))
        out = {f"{name}_latency_ms": latency_ms(run, one) for name, run in runners.items()}
    probs = {k: np.concatenate(v) for k, v in probs.items()}
    y = np.asarray(labels)
    for name, p in probs.items():
        out[f"{name}_accuracy"] = float((p.argmax(1) == y).mean())
        if name != "torch":
            out[f"{name}_max_abs_diff"] = float(np.abs(p - probs["torch"]).max())
            out[f"{name}_agreement"] = float((p.argmax(1) == probs["torch"].argmax(1)).mean())
    return out


def export_and_check(model_dir: str, output: str, quantize: str | None = None, reduce_range: bool = False,
                     per_channel: bool = False, data: str = "synthetic", num_images: int = 200, opset: int = 17,
                     tolerance: float = 1e-4) -> dict:
    """Export a saved model folder (`export_files`, its calibrated temperature included) and check every file
    against PyTorch on `num_images` images; the results, with `parity_ok` (fp32 within `tolerance`)."""
    from ..models.modeling import load_pretrained, read_temperature

    model = load_pretrained(model_dir).eval()
    exporter, paths = export_files(model, output, quantize, read_temperature(model_dir), opset, reduce_range,
                                   per_channel)
    images, labels = sample_images(data, num_images)
    result = {"exporter": exporter, "opset": opset, "reduce_range": reduce_range, "per_channel": per_channel,
              "files": paths, "num_images": len(images), "data": data,
              "sizes_mb": {k: os.path.getsize(p) / 1e6 for k, p in paths.items()},
              **evaluate(model, paths, images, labels, PipelineConfig.from_model_config(model.config))}
    result["tolerance"] = tolerance
    result["parity_ok"] = result["fp32_max_abs_diff"] <= tolerance
    if "int8" in paths:
        result["int8_accuracy_change"] = result["int8_accuracy"] - result["fp32_accuracy"]
        result["int8_speedup"] = result["fp32_latency_ms"] / result["int8_latency_ms"]
    return result


def require_parity(result: dict) -> None:
    """Raise ParityError when `export_and_check` found the fp32 file off PyTorch's probabilities."""
    if not result["parity_ok"]:
        raise ParityError(f"fp32 ONNX differs from PyTorch by {result['fp32_max_abs_diff']:.2e} > "
                          f"{result['tolerance']:g}")
