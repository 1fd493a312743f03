"""Export a trained model folder to ONNX (fp32, optionally int8), check it, and measure it.

    python scripts/export_onnx.py --model outputs/quickstart --output model.onnx [--quantize int8]

Steps: `torch.onnx.export` of the timm network inside the TimmWrapper (dynamic batch axis, opset 17;
the dynamo exporter when onnxscript is installed, else the TorchScript exporter), `onnx.checker`,
then a parity check of the fp32 ONNX probabilities against PyTorch on `--num_images` images
(synthetic faces, or a dataset's validation split through `--data`). With `--quantize int8`,
onnxruntime's dynamic quantization writes `<output>.int8.onnx`; its accuracy, agreement with fp32
and batch-1 latency are reported. Label names, preprocessing and the calibration temperature go
into the ONNX `metadata_props`, so `EmotionRecognizer.from_pretrained("model.onnx")` needs nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone without install

import numpy as np
import onnx
import torch

from fer_hf.faces import FRAMING_KEY, framing_of
from fer_hf.labels import CLASSES
from fer_hf.modeling import preprocessing_config, read_temperature
from fer_hf.onnx_backend import METADATA_KEY, OnnxClassifier
from fer_hf.transforms import FerCollator, FerTransform


class LogitsOnly(torch.nn.Module):
    """The wrapped timm network with a plain tensor output (exporters want tensors, not ModelOutputs)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def export(model, path: str, image_size: int, opset: int = 17) -> str:
    """Write `path`; returns which exporter succeeded."""
    # eval() on the wrapper too: the exporter restores the wrapper's mode afterwards, recursively, and a
    # wrapper left in training mode would put BatchNorm/dropout of the network back into training.
    wrapped, x = LogitsOnly(model).eval(), torch.randn(2, 3, image_size, image_size)
    kwargs = dict(input_names=["pixel_values"], output_names=["logits"], opset_version=opset)
    try:
        import onnxscript  # noqa: F401  the dynamo exporter needs it; without it go straight to TorchScript

        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(wrapped, (x,), path, dynamo=True, external_data=False,
                          dynamic_shapes={"pixel_values": {0: batch}}, **kwargs)
        return "dynamo"
    except Exception as err:  # noqa: BLE001  any dynamo failure: the TorchScript exporter is the fallback
        print(f"dynamo exporter unavailable or failed ({type(err).__name__}); using dynamo=False")
    torch.onnx.export(wrapped, (x,), path, dynamo=False, do_constant_folding=True,
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, **kwargs)
    return "torchscript"


def write_metadata(path: str, meta: dict) -> None:
    """Store the inference settings inside the ONNX file itself (one file to ship)."""
    model = onnx.load(path)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(model, path)


def export_files(model, output: str, quantize: str | None = None, temperature: float | None = None,
                 opset: int = 17, reduce_range: bool = False, per_channel: bool = False) -> tuple[str, dict]:
    """Write the fp32 ONNX file (and `<output>.int8.onnx`), with inference metadata; (exporter, {kind: path})."""
    pre = preprocessing_config(model.config)
    meta = {**pre, "labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
            "calibration_temperature": temperature, "architecture": model.config.architecture,
            FRAMING_KEY: framing_of(model.config.to_dict()).to_dict()}
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    exporter = export(model, output, pre["image_size"], opset)
    model.eval()  # the parity check compares inference with inference
    onnx.checker.check_model(output, full_check=True)
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
        from fer_hf.synthetic import draw_face

        rng = np.random.default_rng(seed)
        labels = [i % len(CLASSES) for i in range(n)]
        return [draw_face(CLASSES[i], rng, size=96) for i in labels], labels
    from fer_hf.data import DataArguments, build_datasets

    ds = build_datasets(DataArguments(datasets=[data], max_eval_samples=n), seed=seed)["validation"]
    return list(ds["image"]), list(ds["label"])


def batches(images, image_size: int, mean, std, size: int = 50):
    transform, collator = FerTransform(image_size, train=False), FerCollator(mean, std, image_size)
    for i in range(0, len(images), size):
        yield collator.normalise(torch.stack([transform.one(im) for im in images[i:i + size]]))


def latency_ms(fn, x, runs: int = 30) -> float:
    fn(x)  # warm-up: first call allocates
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def evaluate(model, paths: dict, images, labels, pre) -> dict:
    """Probabilities of PyTorch and every ONNX file on the same batches; parity, accuracy, latency."""
    runners = {"torch": lambda x: model(pixel_values=x).logits}
    runners.update({name: OnnxClassifier(p) for name, p in paths.items()})
    torch.set_num_threads(1)  # the same single thread for every backend: a fair latency comparison
    probs = {name: [] for name in runners}
    with torch.inference_mode():
        for x in batches(images, pre["image_size"], pre["mean"], pre["std"]):
            for name, run in runners.items():
                probs[name].append(run(x).float().softmax(-1).numpy())
        one = next(batches(images[:1], pre["image_size"], pre["mean"], pre["std"]))
        out = {f"{name}_latency_ms": latency_ms(run, one) for name, run in runners.items()}
    probs = {k: np.concatenate(v) for k, v in probs.items()}
    y = np.asarray(labels)
    for name, p in probs.items():
        out[f"{name}_accuracy"] = float((p.argmax(1) == y).mean())
        if name != "torch":
            out[f"{name}_max_abs_diff"] = float(np.abs(p - probs["torch"]).max())
            out[f"{name}_agreement"] = float((p.argmax(1) == probs["torch"].argmax(1)).mean())
    return out


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="A saved model folder (config.json + weights).")
    p.add_argument("--output", default="model.onnx", help="The fp32 ONNX file to write.")
    p.add_argument("--quantize", choices=["int8"], default=None, help="Also write <output>.int8.onnx.")
    p.add_argument("--reduce_range", action="store_true", help="int8 weights in 7 bits: the same scores on every CPU "
                   "and in the browser (AVX2 kernels saturate with 8-bit weights); used by build_static_space.py")
    p.add_argument("--per_channel", action="store_true", help="int8 weight scales per output channel")
    p.add_argument("--data", default="synthetic", help="Images for the checks: 'synthetic' or a dataset spec.")
    p.add_argument("--num_images", type=int, default=200)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--tolerance", type=float, default=1e-4, help="Largest allowed fp32 probability difference.")
    p.add_argument("--results", default=None, help="Where to write the results JSON (default: <output>.json).")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    from fer_hf.inference import load_model

    model = load_model(args.model).eval()
    pre = preprocessing_config(model.config)
    exporter, paths = export_files(model, args.output, args.quantize, read_temperature(args.model), args.opset,
                                   args.reduce_range, args.per_channel)
    images, labels = sample_images(args.data, args.num_images)
    result = {"exporter": exporter, "opset": args.opset, "reduce_range": args.reduce_range,
              "per_channel": args.per_channel, "files": paths, "num_images": len(images), "data": args.data,
              "sizes_mb": {k: os.path.getsize(p) / 1e6 for k, p in paths.items()},
              **evaluate(model, paths, images, labels, pre)}
    result["parity_ok"] = result["fp32_max_abs_diff"] <= args.tolerance
    if "int8" in paths:
        result["int8_accuracy_change"] = result["int8_accuracy"] - result["fp32_accuracy"]
        result["int8_speedup"] = result["fp32_latency_ms"] / result["int8_latency_ms"]
    with open(args.results or args.output.removesuffix(".onnx") + ".json", "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    if not result["parity_ok"]:
        raise SystemExit(f"fp32 ONNX differs from PyTorch by {result['fp32_max_abs_diff']:.2e} > {args.tolerance:g}")
    return result


if __name__ == "__main__":
    main()
