"""Build the static Space: the whole demo as a self-contained web site that runs in the browser.

    python scripts/build_static_space.py --model outputs/quickstart --output_dir site [--fp32]
    python scripts/build_static_space.py --model outputs/quickstart --output_dir site --push_to_hub USER/NAME
    python -m http.server -d site 8000        # then open http://127.0.0.1:8000

The command for fer_hf.export.static_site (what the site holds: its docstring): the page from static_space/, the
model as model.onnx (int8 by default, 7-bit weights so that the page's scores are predict.py's), preprocessing.json
(the ONNX file's PipelineConfig), YuNet and an int8 ViT as programs for the page's own WebAssembly kernels,
onnxruntime-web where the page needs it, and README.md, the card (fer_hf.hub.space_card). FER_DETECT_MAX_SIDE, when
set, replaces the model's detection size. `--push_to_hub` checks the Hub and a token before building, then uploads
the folder as one commit.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fer_hf.export.static_site import SIZE_LIMIT_MB, SiteOptions, make_site
from fer_hf.hub.space_card import check_hub, upload, write_readme


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a trained model folder, or an .onnx file from scripts/export_onnx.py")
    p.add_argument("--output_dir", required=True, help="the site folder to write")
    p.add_argument("--fp32", action="store_true", help="ship the fp32 graph instead of the int8 one (about 4x larger)")
    p.add_argument("--full_range", action="store_true", help="8-bit int8 weights: a little closer to the fp32 model, "
                   "but on AVX2 CPUs predict.py's scores then differ from the page's by up to ~0.01")
    p.add_argument("--yunet_model", default=None, help="the YuNet ONNX file (default: the package's, FER_YUNET_PATH, "
                   "the fer_hf cache, or ../shared/models/yunet)")
    p.add_argument("--ort_dist", default=None, help="an onnxruntime-web dist/ folder to copy from instead of `npm ci`")
    p.add_argument("--eval_dir", action="append", default=[], help="scripts/evaluate.py output folder(s) for the card")
    p.add_argument("--num_images", type=int, default=50, help="synthetic faces for the export's parity check")
    p.add_argument("--title", default="Facial expression recognition")
    p.add_argument("--overwrite", action="store_true", help="replace an output_dir this script built before")
    p.add_argument("--push_to_hub", default=None, metavar="USER/NAME", help="upload the site as this static Space")
    p.add_argument("--private", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.push_to_hub:  # before the build: fail in seconds, not after it
        check_hub(args.push_to_hub)
    side = os.environ.get("FER_DETECT_MAX_SIDE")
    options = SiteOptions(model=args.model, fp32=args.fp32, full_range=args.full_range, yunet_model=args.yunet_model,
                          ort_dist=args.ort_dist, num_images=args.num_images,
                          detect_max_side=int(side) if side else None)

    def card(site, config, export):
        write_readme(site, args.model, args.title, config, export, args.eval_dir)

    result = make_site(options, args.output_dir, args.overwrite, card)
    print(f"classifier in the page: {result['classifier']}")
    files, total_mb = result["files"], sum(result["files"].values()) / 1e6
    print(f"static site in {args.output_dir}: {len(files)} files, {total_mb:.1f} MB (limit {SIZE_LIMIT_MB} MB)")
    if not result["under_size_limit"]:
        print(f"WARNING: the site is over {SIZE_LIMIT_MB} MB; the int8 model (without --fp32) is about 4x smaller")
    for name, size in files.items():
        print(f"  {size / 1e6:8.3f} MB  {name}")
    if "warning" in result:
        print(result["warning"])
    if args.push_to_hub:
        result["commit_url"] = upload(Path(args.output_dir), args.push_to_hub, args.private)
        print(f"uploaded: {result['commit_url']}")
    return result


if __name__ == "__main__":
    main()
