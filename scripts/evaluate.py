"""Evaluate a trained model on one split of one or more sources: metrics, calibration, figures.

    python scripts/evaluate.py --model outputs/quickstart --datasets ../shared/data/fer2013 \
        --split validation --output_dir outputs/eval [--tta flip] [--temperature auto]
    python scripts/evaluate.py --model outputs/ferplus_vit_tiny_cpu --suite ../shared/data --output_dir outputs/suite \
        [--record student]

Writes to `output_dir`: metrics.json (headline, per-class and per-source figures, ECE, counts),
report.md (the per-class table and a per-source table), confusion_matrix.png, reliability.png and
predictions.csv (one row per evaluated image). `--tta flip` averages the scores of each image and its
mirror; `--temperature auto` fits temperature scaling on this split and stores it in the model's
config.json, which inference then applies. `--suite` scores FER+ validation and the cross-domain dev sets in one
table instead (suite.json); `--record NAME` also stores it in results/models.json. Evaluation is deterministic: two runs give the same files (fer_hf/evaluation/report.py).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

import torch

from fer_hf.evaluation.report import evaluate_split, evaluate_suite
from fer_hf.inference.onnx_backend import OnnxClassifier, onnx_file
from fer_hf.models.modeling import load_pretrained
from fer_hf.utils.device import cpu_has_native_bf16

logger = logging.getLogger("fer_hf.evaluate")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="A saved model folder (train.py's output_dir) or a Hub id; with "
                   "--suite also an ONNX export (scripts/export_onnx.py, e.g. the static page's int8 model).")
    p.add_argument("--datasets", nargs="+", default=["synthetic"], help="Sources, as for train.py.")
    p.add_argument("--suite", nargs="?", const="../shared/data", default=None, metavar="DATA_ROOT",
                   help="Score the quality suite instead (fer_hf.evaluation.suite: FER+ validation, SFEW and CK+ dev sets under "
                        "DATA_ROOT, default ../shared/data): one table of accuracy, macro-F1 and per-class recall, "
                        "written to output_dir/suite.json.")
    p.add_argument("--record", default=None, metavar="NAME",
                   help="With --suite: also store the table as NAME in --results (the repo's measured numbers, which "
                        "the README's headline table is checked against).")
    p.add_argument("--results", default="results/models.json", help="The JSON file --record writes into.")
    p.add_argument("--split", default="validation", help="Split to evaluate on (default: validation).")
    p.add_argument("--output_dir", required=True, help="Folder for metrics.json, report.md, figures, predictions.csv.")
    p.add_argument("--tta", choices=["none", "flip"], default="none", help="flip: average image and mirror scores.")
    p.add_argument("--temperature", default=None,
                   help="auto (fit on this split and store in the model's config.json), a number (this run "
                        "only), or none (ignore a stored one). Default: the model's stored temperature, if any.")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (slow on CPUs without native bf16).")
    p.add_argument("--synthetic_per_class", type=int, default=None,
                   help="As for train.py (synthetic sources). Default: the model folder's train_args.json, else 200.")
    p.add_argument("--seed", type=int, default=None,
                   help="The training seed: draws synthetic data and held-out splits. Default: the model folder's "
                        "train_args.json, else 42.")
    p.add_argument("--exclude_duplicates_of", default=None, metavar="SPLIT",
                   help="Leave out images pixel-identical to an image of this split of the same source (e.g. "
                        "train: FER2013's PublicTest repeats ~280 Training faces).")
    p.add_argument("--validation_split", type=float, default=None,
                   help="For sources without a validation split: evaluate the share of train that train.py "
                        "held out with --seed (e.g. 0.1). Default: such a source is an error.")
    args = p.parse_args(argv)
    if args.record and not args.suite:
        p.error("--record stores the quality suite's table: give --suite too.")
    args.command = "python scripts/evaluate.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if args.temperature is not None and args.temperature.lower() not in ("auto", "none"):
        try:
            if float(args.temperature) <= 0:
                raise ValueError
        except ValueError:
            p.error(f"--temperature {args.temperature!r}: expected auto, none or a positive number.")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fer_hf").setLevel(logging.INFO)
    if args.bf16 and not cpu_has_native_bf16() and not torch.cuda.is_available():
        logger.warning("--bf16 on a CPU without native bf16 is emulated and ~20x slower than fp32 here.")
    onnx = onnx_file(args.model)  # an ONNX export (scripts/export_onnx.py) runs on onnxruntime
    if onnx and not args.suite:
        raise SystemExit(f"--model {args.model}: an ONNX file is scored with --suite (a single split needs the "
                         "model folder: calibration writes into its config.json).")
    if onnx:
        model = OnnxClassifier(onnx, threads=torch.get_num_threads())
    else:  # first: a bad --model fails in seconds, before data loading
        model = load_pretrained(args.model, "--model").to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return evaluate_suite(model, args) if args.suite else evaluate_split(model, args)


if __name__ == "__main__":
    main()
