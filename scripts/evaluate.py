"""Evaluate a trained model on one split of one or more sources: metrics, calibration, figures.

    python scripts/evaluate.py --model outputs/quickstart --datasets ../shared/data/fer2013 \
        --split validation --output_dir outputs/eval [--tta flip] [--temperature auto]

Writes to `output_dir`: metrics.json (headline, per-class and per-source figures, ECE, counts),
report.md (the per-class table and a per-source table), confusion_matrix.png, reliability.png and
predictions.csv (one row per evaluated image). `--tta flip` averages the scores of each image and its
mirror; `--temperature auto` fits temperature scaling on this split and stores it in the model's
config.json, which inference then applies. Evaluation is deterministic: two runs give the same files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone without install

import numpy as np
import torch
from datasets import concatenate_datasets

from fer_hf import evaluation as ev
from fer_hf.data import validation_of, load_sources
from fer_hf.hub import require_hub
from fer_hf.labels import CLASSES
from fer_hf.metrics import confusion, format_report
from fer_hf.trainer import cpu_has_native_bf16

logger = logging.getLogger("fer_hf.evaluate")
HEADLINE = ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "ece", "nll")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="A saved model folder (train.py's output_dir) or a Hub id.")
    p.add_argument("--datasets", nargs="+", default=["synthetic"], help="Sources, as for train.py.")
    p.add_argument("--suite", nargs="?", const="../shared/data", default=None, metavar="DATA_ROOT",
                   help="Score the quality suite instead (fer_hf.domains: FER+ validation, SFEW and CK+ dev sets under "
                        "DATA_ROOT, default ../shared/data): one table of accuracy, macro-F1 and per-class recall, "
                        "written to output_dir/suite.json.")
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
    if args.temperature is not None and args.temperature.lower() not in ("auto", "none"):
        try:
            if float(args.temperature) <= 0:
                raise ValueError
        except ValueError:
            p.error(f"--temperature {args.temperature!r}: expected auto, none or a positive number.")
    return args


def load_model(spec: str):
    """The model from a local folder or (online only) a Hub id; fails fast with what to do instead."""
    from transformers import AutoModelForImageClassification

    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"--model {spec!r} is a folder without config.json; expected a saved model "
                                    "folder (the output_dir of scripts/train.py).")
    elif os.path.exists(path) or spec.count("/") != 1:
        raise FileNotFoundError(f"--model {spec!r}: no such model folder, and not a Hub id of the form org/name.")
    else:
        require_hub(f"--model {spec!r}", "Pass a local model folder instead (the output_dir of scripts/train.py).")
    model = AutoModelForImageClassification.from_pretrained(path if os.path.isdir(path) else spec)
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


DEFAULTS = {"seed": 42, "synthetic_per_class": 200}


def training_settings(args) -> dict:
    """Fill --seed and --synthetic_per_class, when not given, from the model folder's train_args.json (what
    training drew its synthetic faces and held-out share with), else the defaults; returns where each came from."""
    saved = {}
    path = os.path.join(os.path.expanduser(args.model), "train_args.json")
    if os.path.isfile(path):
        with open(path) as f:
            saved = json.load(f)
    found = {"seed": (saved.get("training") or saved).get("seed"),
             "synthetic_per_class": (saved.get("data") or saved).get("synthetic_per_class")}
    origin = {}
    for key, default in DEFAULTS.items():
        if getattr(args, key) is not None:
            origin[key] = "argument"
        elif found[key] is not None:
            setattr(args, key, found[key])
            origin[key] = "train_args.json"
        else:
            setattr(args, key, default)
            origin[key] = "default"
    held = (saved.get("data") or {}).get("validation_split")
    if args.validation_split and held and abs(args.validation_split - held) > 1e-9:
        logger.warning("--validation_split %g differs from the %g training held out (train_args.json): these "
                       "are not the images training was validated on.", args.validation_split, held)
    logger.info("seed %s (%s), synthetic_per_class %s (%s)", args.seed, origin["seed"],
                args.synthetic_per_class, origin["synthetic_per_class"])
    return origin


def select_split(args):
    """The chosen split of every source, concatenated (columns image, label, source)."""
    parts = []
    for name, dd in load_sources(args.datasets, args.synthetic_per_class, args.seed).items():
        if args.split in dd and args.exclude_duplicates_of:
            if args.exclude_duplicates_of not in dd:
                raise ValueError(f"--exclude_duplicates_of {args.exclude_duplicates_of}: source {name!r} has "
                                 f"no such split (splits: {list(dd)}).")
            kept, dropped = ev.drop_duplicates_of(dd[args.split], dd[args.exclude_duplicates_of])
            logger.info("%s: left out %d of %d %s images that are pixel-identical to %s images.", name,
                        dropped, len(dd[args.split]), args.split, args.exclude_duplicates_of)
            args.duplicates_left_out = getattr(args, "duplicates_left_out", 0) + dropped
            parts.append(kept)
        elif args.split in dd:
            parts.append(dd[args.split])
        elif args.split == "validation" and args.validation_split and "train" in dd:
            parts.append(validation_of(dd, args.validation_split, args.seed, name)[1])
        else:
            only = "it has only a 'train' split" if list(dd) == ["train"] else f"its splits are {list(dd)}"
            hint = " (or --validation_split 0.1 for the share train.py held out)" if "train" in dd else ""
            raise ValueError(f"source {name!r} has no {args.split!r} split: {only}. "
                             f"Pass --split with one of {list(dd)}{hint}.")
    # vote distributions (FER+ `soft_label`) are training targets only: scoring uses the majority label
    return concatenate_datasets([p.select_columns(["image", "label", "source"]) for p in parts])


def choose_temperature(args, logits, labels) -> tuple[float, str, dict | None]:
    """(T, where it came from, calibration record when fitted) — see --temperature."""
    local = os.path.isdir(os.path.expanduser(args.model))
    stored = ev.read_temperature(os.path.expanduser(args.model) if local else args.model)
    asked = (args.temperature or "").lower()
    if not asked:
        return (stored, "config", None) if stored else (1.0, "none", None)
    if asked == "none":
        return 1.0, "disabled", None
    if asked != "auto":
        return float(asked), "argument", None
    before = stored or 1.0
    fitted = ev.fit_temperature(logits, labels)
    p_before, p_after = ev.softmax(logits, before), ev.softmax(logits, fitted)
    if ev.nll(p_after, labels) > ev.nll(p_before, labels):  # only at a bound: never make calibration worse
        fitted, p_after = before, p_before
    record = {"temperature_before": before, "temperature": fitted, "fitted_on": args.split,
              "nll_before": ev.nll(p_before, labels), "nll_after": ev.nll(p_after, labels),
              "ece_before": ev.expected_calibration_error(p_before, labels),
              "ece_after": ev.expected_calibration_error(p_after, labels),
              "stored_in": None}
    if local:
        record["stored_in"] = ev.write_temperature(os.path.expanduser(args.model), fitted)
    else:
        logger.warning("--model %s is not a local folder: the fitted temperature is only reported.", args.model)
    return fitted, "fitted", record


def block(labels, probs, sources, source_of_skipped) -> dict:
    """Headline + per-class figures, then the same per source (with each source's skipped count)."""
    out = ev.summarise(labels, probs)
    out["per_source"] = ev.per_source_metrics(labels, probs, sources)
    for name, figures in out["per_source"].items():
        figures["n_skipped"] = int(np.sum(source_of_skipped == name))
    return out


def write_predictions(path, ids, sources, labels, probs) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "source", "label", "prediction", "confidence", *[f"score_{c}" for c in CLASSES]])
        for i, s, y, p in zip(ids, sources, labels, probs):
            w.writerow([i, s, CLASSES[y], CLASSES[int(p.argmax())], f"{p.max():.6f}", *[f"{v:.6f}" for v in p]])


def source_table(per_source: dict) -> str:
    lines = ["| source | images | skipped | accuracy | macro-F1 | weighted-F1 | balanced acc. | ECE |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in per_source.items():
        lines.append(f"| {name} | {m['n_images']} | {m['n_skipped']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                     f"{m['weighted_f1']:.4f} | {m['balanced_accuracy']:.4f} | {m['ece']:.4f} |")
    return "\n".join(lines)


def write_report(path, metrics: dict) -> None:
    m = metrics
    lines = [f"# Evaluation of `{m['model']}`", "",
             f"Split `{m['split']}` of {', '.join(f'`{d}`' for d in m['datasets'])}: {m['n_images']} images "
             f"({m['n_skipped']} unreadable, skipped). Temperature {m['temperature']:.4f} ({m['temperature_from']}).", ""]
    views = [("Single view", m)] + ([("Flip TTA", m["tta_flip"])] if "tta_flip" in m else [])
    for title, b in views:
        lines += [f"## {title}", "", f"ECE ({ev.ECE_BINS} bins) {b['ece']:.4f}, NLL {b['nll']:.4f}", "",
                  "```", format_report(b), "```", "", "Per source:", "", source_table(b["per_source"]), ""]
    if c := m.get("calibration"):
        lines += ["## Temperature scaling", "", f"Fitted on this split (so the 'after' figures are optimistic): "
                  f"T {c['temperature_before']:.4f} -> {c['temperature']:.4f}, NLL {c['nll_before']:.4f} -> "
                  f"{c['nll_after']:.4f}, ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f}.", ""]
    lines += [f"Figures and predictions.csv use the {m['predictions_from']} scores.", "",
              "![confusion matrix](confusion_matrix.png)", "", "![reliability](reliability.png)", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def evaluate_suite(args, model) -> dict:
    """`--suite`: the model on every set of the quality suite, one table."""
    from fer_hf.domains import format_suite, score_suite, suite_sets

    asked = (args.temperature or "").lower()
    if asked == "auto":
        raise ValueError("--suite with --temperature auto: the cross-domain sets measure only, nothing is fitted on "
                         "them; fit the temperature on FER+ validation without --suite first.")
    local = os.path.isdir(os.path.expanduser(args.model))
    stored = ev.read_temperature(os.path.expanduser(args.model)) if local and not asked else None
    temperature = float(asked) if asked not in ("", "none") else stored or 1.0
    results = score_suite(model, suite_sets(args.suite), args.batch_size, args.tta if args.tta == "flip" else None,
                          temperature)
    os.makedirs(args.output_dir, exist_ok=True)
    out = {"model": args.model, "data_root": args.suite, "tta": args.tta, "temperature": temperature, "sets": results}
    with open(os.path.join(args.output_dir, "suite.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(f"\n{args.model} (tta {args.tta}, temperature {temperature:g}):\n{format_suite(results)}\n")
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fer_hf").setLevel(logging.INFO)
    if args.bf16 and not cpu_has_native_bf16() and not torch.cuda.is_available():
        logger.warning("--bf16 on a CPU without native bf16 is emulated and ~20x slower than fp32 here.")
    model = load_model(args.model)  # first: a bad --model fails in seconds, before data loading
    if torch.cuda.is_available():
        model = model.cuda()
    if args.suite:
        return evaluate_suite(args, model)
    settings_from = training_settings(args)
    data = select_split(args)
    raw = data.with_format(None)
    all_labels, all_sources = np.asarray(raw["label"]), np.asarray(raw["source"])
    start = time.monotonic()
    pred = ev.predict_logits(model, data, args.batch_size, tta=args.tta if args.tta == "flip" else None, bf16=args.bf16)
    seconds = time.monotonic() - start
    if not len(pred.kept):
        raise ValueError(f"none of the {len(raw)} images of split {args.split!r} of {args.datasets} could be read.")
    labels, sources = all_labels[pred.kept], all_sources[pred.kept]
    temperature, how, calibration = choose_temperature(args, pred.logits, labels)

    probs = ev.softmax(pred.logits, temperature)
    skipped_rows = np.setdiff1d(np.arange(len(raw)), pred.kept)
    metrics = {"model": args.model, "datasets": args.datasets, "split": args.split,
               "temperature": temperature, "temperature_from": how, "tta": args.tta,
               "duplicates_left_out": getattr(args, "duplicates_left_out", None),
               "seed": args.seed, "synthetic_per_class": args.synthetic_per_class, "settings_from": settings_from,
               "n_skipped": int(pred.n_skipped), **block(labels, probs, sources, all_sources[skipped_rows])}
    final = probs
    if pred.flip_logits is not None:
        final = (probs + ev.softmax(pred.flip_logits, temperature)) / 2
        metrics["tta_flip"] = block(labels, final, sources, all_sources[skipped_rows])
    metrics["predictions_from"] = "tta_flip" if pred.flip_logits is not None else "single_view"
    metrics["confusion_matrix"] = confusion(labels, final.argmax(axis=1)).tolist()  # rows true, columns predicted
    if calibration:
        metrics["calibration"] = calibration
    row_in_source = np.zeros(len(raw), dtype=np.int64)  # id fallback: the row's index within its source
    for name in set(all_sources.tolist()):
        row_in_source[all_sources == name] = np.arange(int(np.sum(all_sources == name)))
    ids = [pred.paths[r] or str(row_in_source[r]) for r in range(len(raw))]
    metrics["skipped_ids"] = [f"{all_sources[r]}:{ids[r]}" for r in skipped_rows]

    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    write_report(os.path.join(out, "report.md"), metrics)
    write_predictions(os.path.join(out, "predictions.csv"), [ids[r] for r in pred.kept], sources, labels, final)
    ev.plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), os.path.join(out, "confusion_matrix.png"),
                             title=f"{args.split}: {len(labels)} images")
    before = ev.softmax(pred.logits, calibration["temperature_before"]) if calibration else None
    if before is not None and pred.flip_logits is not None:
        before = (before + ev.softmax(pred.flip_logits, calibration["temperature_before"])) / 2
    ev.plot_reliability(final, labels, os.path.join(out, "reliability.png"), before=before,
                        title=f"Reliability, T={temperature:.3f}")
    print(f"\n{args.split} ({len(labels)} images, {pred.n_skipped} skipped, {seconds:.1f}s):\n"
          f"{format_report(metrics.get('tta_flip', metrics))}\nECE {metrics.get('tta_flip', metrics)['ece']:.4f}\n")
    return {**metrics, "eval_seconds": seconds}


if __name__ == "__main__":
    main()
