"""What a recipe's training step costs under a few variants, timed by the recipe's own budget probe, side by side.

    python benchmarks/step_variants.py --recipe scripts/configs/ferplus_vit_tiny_cpu.yaml --rounds 2 \
        --variants "same=--teacher_view,same" base "compile=--torch_compile,true"

Each variant is `scripts/train.py <recipe> --max_steps 1` with its flags: the time budget's probe
(fer_hf/training/budget.py) times the run's own steps (data, augmentation, teacher, precision, optimizer), and with
a teacher cache also the steps once the cache is warm; the one training step and the final evaluation that follow are
not timed. The variants alternate (reversed in every other round) so that a machine that speeds up or slows down
during the benchmark shifts them alike. Prints each variant's median step (cold and warm cache) and its ratio to the
first variant; `--output` writes them as JSON. Run it on otherwise idle cores: the probe says how busy they were.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "train.py")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="scripts/configs/ferplus_vit_tiny_cpu.yaml")
    p.add_argument("--variants", nargs="+", default=["base"], help="name=--flag,value,... ('base': the recipe as is).")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--extra", default="", help="Flags added to every variant (quoted), e.g. '--datasets DIR'.")
    p.add_argument("--output", default=None)
    return p.parse_args(argv)


def probe(recipe: str, flags: list[str], out: str) -> dict:
    """The budget decision train.py records for one variant (step_seconds, warm_step_seconds, others_cpu_share)."""
    cmd = [sys.executable, TRAIN, recipe, "--max_steps", "1", "--time_budget_minutes", "1000",
           "--teacher_budget_minutes", "0", "--eval_strategy", "no", "--save_strategy", "no",
           "--load_best_model_at_end", "false", "--report_sets", "", "--report_to", "none",
           "--output_dir", out, "--overwrite_output_dir", *flags]
    with open(out + ".log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    with open(os.path.join(out, "train_args.json")) as f:
        return json.load(f)["time_budget"]


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    variants = {}
    for spec in args.variants:
        name, _, flags = spec.partition("=")
        variants[name] = flags.split(",") if flags else []
    runs = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for name in order:
                decision = probe(args.recipe, [*shlex.split(args.extra), *variants[name]], os.path.join(tmp, name))
                runs[name].append(decision)
                print(f"round {r + 1} {name}: {decision['step_seconds']:.3f} s a step"
                      + (f", {decision['warm_step_seconds']:.3f} warm" if "warm_step_seconds" in decision else "")
                      + f" (others kept {decision['others_cpu_share']:.0%} of the cores busy)", flush=True)
    table = {}
    for name, decisions in runs.items():
        cold = float(np.median([d["step_seconds"] for d in decisions]))
        warm = [d["warm_step_seconds"] for d in decisions if "warm_step_seconds" in d]
        table[name] = {"flags": variants[name], "step_seconds": round(cold, 4),
                       "warm_step_seconds": round(float(np.median(warm)), 4) if warm else None,
                       "others_cpu_share": max(d["others_cpu_share"] for d in decisions), "rounds": decisions}
    first = next(iter(table.values()))["step_seconds"]
    print("| variant | s a step (cold cache) | warm cache | x first variant (warm where cached) |\n|---|---|---|---|")
    for name, row in table.items():
        best = row["warm_step_seconds"] or row["step_seconds"]
        print(f"| {name} | {row['step_seconds']:.3f} | {row['warm_step_seconds'] or '':} | {first / best:.2f} |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(table, f, indent=2)
    return table


if __name__ == "__main__":
    main()
