"""Export a trained model folder to ONNX (fp32, optionally int8), check it, and measure it.

    python scripts/export_onnx.py --model outputs/quickstart --output model.onnx [--quantize int8]

The command for fer_hf.export.onnx: the TorchScript export of the timm network inside the TimmWrapper (dynamic
batch axis, opset 17), `onnx.checker`, then a parity check of the fp32 ONNX probabilities against PyTorch on
`--num_images` images (synthetic faces, or a dataset's validation split through `--data`). With `--quantize int8`,
onnxruntime's dynamic quantization writes `<output>.int8.onnx`; its accuracy, agreement with fp32 and batch-1
latency are reported. The model's PipelineConfig (labels, preprocessing, calibration temperature, framing,
detection) goes into the ONNX `metadata_props`, so `EmotionRecognizer.from_pretrained("model.onnx")` needs nothing
else. The results go to `<output>.json` (or `--results`).
"""

from __future__ import annotations

import argparse
import json

from fer_hf.export.onnx import ParityError, export_and_check, require_parity


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
    args = parse(argv)
    result = export_and_check(args.model, args.output, args.quantize, args.reduce_range, args.per_channel,
                              args.data, args.num_images, args.opset, args.tolerance)
    with open(args.results or args.output.removesuffix(".onnx") + ".json", "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    try:
        require_parity(result)
    except ParityError as err:
        raise SystemExit(str(err)) from None
    return result


if __name__ == "__main__":
    main()
