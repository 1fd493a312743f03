"""Training curves: the validation points of a run folder (`trainer_state.json`) and a figure of several runs.

`eval_points` reads accuracy and macro-F1 after each evaluation (a resumed run's repeated epoch: the later entry);
`minutes_per_epoch` is what an epoch cost, from the run's own training time (all its parts); `plot_curves` draws the runs per
epoch and, given minutes, per CPU-minute. scripts/plot_curves.py and benchmarks/make_figures.py draw with them.
"""

from __future__ import annotations

import os

from ..models.run_folder import RunFolder


def eval_points(run_dir: str) -> list[dict]:
    """`[{epoch, accuracy, macro_f1}]` from a run folder (or one of its checkpoints), in training order."""
    run = RunFolder.read(run_dir, require_model=False)
    if not run.state:
        raise FileNotFoundError(f"{run_dir!r}: no trainer_state.json (expected a scripts/train.py output folder).")
    points = {}
    for entry in run.log_history:  # a resumed run may evaluate an epoch again: the later entry wins
        if "eval_accuracy" in entry:
            points[round(entry["epoch"], 4)] = {"epoch": entry["epoch"], "accuracy": entry["eval_accuracy"],
                                                "macro_f1": entry.get("eval_macro_f1")}
    return [points[k] for k in sorted(points)]


def minutes_per_epoch(run_dir: str) -> float | None:
    """Wall-clock minutes an epoch took in this run (its whole training time over epochs trained), or None if not
    recorded (a run resumed before the time of all its parts was kept)."""
    run = RunFolder.read(run_dir, require_model=False)
    runtime, epochs = run.train_seconds, run.state.get("epoch")
    return runtime / 60 / epochs if runtime and epochs else None


def plot_curves(runs: dict[str, list[dict]], output: str, minutes: dict[str, float] | None = None) -> None:
    """`runs`: {label: eval_points}; with `minutes` ({label: minutes an epoch}) a second panel per CPU-minute."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    minutes = minutes or {}
    timed = bool(minutes)
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
        if label in minutes:
            axes[1].plot([e * minutes[label] for e in epochs], acc, marker="o", ms=3, color=line.get_color(), label=label)
    axes[0].set(xlabel="epoch", ylabel="validation %", title="validation after each epoch")
    if timed:
        axes[1].set(xlabel="training minutes (2-core CPU)", ylabel="validation accuracy %", title="per CPU-minute")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output)
