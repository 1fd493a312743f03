"""What scripts/evaluate.py computes and writes: one split of some sources, or the quality suite.

`evaluate_split(model, args)` scores the chosen split (single view and flip TTA), calibrates (a stored, given or
fitted temperature), and writes metrics.json, report.md, predictions.csv, the confusion matrix and the
reliability diagram to `args.output_dir`; `evaluate_suite(model, args)` scores the quality suite
(fer_hf.evaluation.suite) into suite.json. `args` is scripts/evaluate.py's namespace (its --help says each field).
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
from datasets import concatenate_datasets

from ..data.labels import CLASSES
from ..data.sources import load_sources, validation_of
from ..models.run_folder import WEIGHT_FILES, RunFolder
from . import scoring as ev
from .metrics import confusion, text_report

logger = logging.getLogger("fer_hf.evaluate")
HEADLINE = ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "ece", "nll")


DEFAULTS = {"seed": 42, "synthetic_per_class": 200}


def training_settings(args) -> dict:
    """Fill --seed and --synthetic_per_class, when not given, from the model folder's train_args.json (what
    training drew its synthetic faces and held-out share with), else the defaults; returns where each came from."""
    run = RunFolder.read(os.path.expanduser(args.model), require_model=False)
    found = {"seed": run.seed, "synthetic_per_class": run.data_args.get("synthetic_per_class")}
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
    held = run.data_args.get("validation_split")
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
    out["report"] = text_report(labels, probs.argmax(axis=1))  # scikit-learn's per-class table
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
             (f"Split `{m['split']}` of {', '.join(f'`{d}`' for d in m['datasets'])}: {m['n_images']} images "
             f"({m['n_skipped']} unreadable, skipped). Temperature {m['temperature']:.4f} ({m['temperature_from']})."), ""]
    views = [("Single view", m)] + ([("Flip TTA", m["tta_flip"])] if "tta_flip" in m else [])
    for title, b in views:
        lines += [f"## {title}", "", f"ECE ({ev.ECE_BINS} bins) {b['ece']:.4f}, NLL {b['nll']:.4f}", "",
                  "```", b["report"], "```", "", "Per source:", "", source_table(b["per_source"]), ""]
    if c := m.get("calibration"):
        lines += ["## Temperature scaling", "", (f"Fitted on this split (so the 'after' figures are optimistic): "
                  f"T {c['temperature_before']:.4f} -> {c['temperature']:.4f}, NLL {c['nll_before']:.4f} -> "
                  f"{c['nll_after']:.4f}, ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f}."), ""]
    lines += [f"Figures and predictions.csv use the {m['predictions_from']} scores.", "",
              "![confusion matrix](confusion_matrix.png)", "", "![reliability](reliability.png)", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def evaluate_suite(model, args) -> dict:
    """`--suite`: the model on every set of the quality suite, one table."""
    from fer_hf.evaluation.suite import format_suite, score_suite, suite_sets

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
    if getattr(args, "record", None):
        path = os.path.expanduser(args.model)
        if local:
            what = training_facts(path)
        else:  # an ONNX file: its size (a Hub id: nothing local to describe)
            what = {"weights_mb": round(os.path.getsize(path) / 1e6, 1)} if os.path.isfile(path) else None
        record_results(args.results, args.record, {**out, "command": getattr(args, "command", None), "training": what})
    return out


def training_facts(model_dir: str) -> dict:
    """What a recorded model is: its architecture, data, epochs and minutes actually trained, and where."""
    run = RunFolder.read(os.path.expanduser(model_dir), require_model=False)
    epochs = run.state.get("epoch")
    weights = [os.path.join(run.path, w) for w in WEIGHT_FILES if os.path.isfile(os.path.join(run.path, w))]
    return {"architecture": run.config.get("architecture"), "image_size": run.model_args.get("image_size"),
            "sources": run.sources, "epochs": round(epochs, 2) if epochs else None,
            "steps": run.state.get("global_step"), "train_minutes": round(run.train_seconds / 60, 1)
            if run.train_seconds else None, "precision": run.results.get("precision"),
            "teacher": (run.teacher or {}).get("path"),
            "weights_mb": round(os.path.getsize(weights[0]) / 1e6, 1) if weights else None}


def record_results(path: str, name: str, entry: dict) -> None:
    """Merge `entry` as `name` into the JSON file `path` (e.g. results/models.json): the repo's measured numbers."""
    from ..utils.device import cpu_name

    existing = {}
    if os.path.isfile(path):
        with open(path) as f:
            existing = json.load(f)
    existing[name] = {**entry, "cpu": cpu_name()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(existing, f, indent=1)
        f.write("\n")
    logger.info("recorded %s in %s", name, path)


def evaluate_split(model, args) -> dict:
    """Score `args.split` of `args.datasets`, write every output file, print the report; the metrics."""
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
          f"{metrics.get('tta_flip', metrics)['report']}\nECE {metrics.get('tta_flip', metrics)['ece']:.4f}\n")
    return {**metrics, "eval_seconds": seconds}
