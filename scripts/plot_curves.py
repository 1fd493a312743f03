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

from fer_hf.evaluation.curves import eval_points, plot_curves


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
    plot_curves(runs, args.output, dict(zip(labels, args.minutes_per_epoch or [])))
    result = {"output": args.output, "runs": runs}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
