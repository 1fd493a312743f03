"""Validation curves of training runs, side by side: accuracy and macro-F1 after each evaluation.

    python scripts/plot_curves.py outputs/ferplus_teacher_cpu outputs/ferplus_vit_tiny_cpu \
        --labels "resnet18 teacher" "ViT-Tiny student" --output docs/ferplus_curves.png

Reads each run's `trainer_state.json` (its `log_history`, which a resumed run carries on) and draws
the curves against epochs and, with `--minutes_per_epoch`, against training minutes (the measured
time of an epoch on idle cores, so that recipes are compared per CPU-minute). Prints the points as
JSON too, so that the figures in the README come from the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os

from fer_hf.models.run_folder import RunFolder


def eval_points(run_dir: str) -> list[dict]:
    """`[{epoch, accuracy, macro_f1}]` from a run folder (or one of its checkpoints), in training order."""
    run = RunFolder.read(run_dir, require_model=False)
    if not run.state:
        raise FileNotFoundError(f"{run_dir!r}: no trainer_state.json (expected a scripts/train.py output folder).")
    history = run.log_history
    points = {}
    for entry in history:  # a resumed run may evaluate an epoch again: the later entry wins
        if "eval_accuracy" in entry:
            points[round(entry["epoch"], 4)] = {"epoch": entry["epoch"], "accuracy": entry["eval_accuracy"],
                                                "macro_f1": entry.get("eval_macro_f1")}
    return [points[k] for k in sorted(points)]


def plot(runs: dict[str, list[dict]], output: str, minutes_per_epoch: dict[str, float]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    timed = bool(minutes_per_epoch)
    fig = Figure(figsize=(10 if timed else 5.5, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if timed else 1, squeeze=False)[0]
    for label, points in runs.items():
        epochs = [p["epoch"] for p in points]
        acc = [100 * p["accuracy"] for p in points]
        line, = axes[0].plot(epochs, acc, marker="o", ms=3, label=f"{label} accuracy")
        f1 = [100 * p["macro_f1"] for p in points if p["macro_f1"] is not None]
        if len(f1) == len(points):
            axes[0].plot(epochs, f1, ls="--", color=line.get_color(), label=f"{label} macro-F1")
        if label in minutes_per_epoch:
            axes[1].plot([e * minutes_per_epoch[label] for e in epochs], acc, marker="o", ms=3, color=line.get_color(), label=label)
    axes[0].set(xlabel="epoch", ylabel="validation %", title="validation after each epoch")
    if timed:
        axes[1].set(xlabel="training minutes (idle 2-core CPU)", ylabel="validation accuracy %", title="per CPU-minute")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="training output folders")
    parser.add_argument("--labels", nargs="+", help="one name per run (default: the folder names)")
    parser.add_argument("--minutes_per_epoch", nargs="+", type=float,
                        help="one per run: measured minutes an epoch takes, for the per-CPU-minute panel")
    parser.add_argument("--output", default="curves.png", help="PNG to write")
    args = parser.parse_args(argv)
    labels = args.labels or [os.path.basename(os.path.normpath(r)) for r in args.runs]
    for name, values in (("--labels", labels), ("--minutes_per_epoch", args.minutes_per_epoch)):
        if values is not None and len(values) != len(args.runs):
            parser.error(f"{name} needs one value per run ({len(args.runs)}), got {len(values)}")
    runs = {label: eval_points(run) for label, run in zip(labels, args.runs)}
    plot(runs, args.output, dict(zip(labels, args.minutes_per_epoch or [])))
    result = {"output": args.output, "runs": runs}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
