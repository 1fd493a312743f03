"""Equal-steps ablations of a FER+ recipe, each judged on FER+ validation and on the cross-domain dev sets.

    python benchmarks/ablate_ferplus.py --recipe scripts/configs/ferplus_teacher_cpu.yaml --steps 1500 \
        --variants base balanced logit_adjust cutmix colour trivialaugment crop fer2013_labels

Each variant is one real training run (`accelerate launch scripts/train.py <recipe> --max_steps N ...`, no time
budget, one evaluation at the end) in `<output_dir>/<variant>`, then scored with `fer_hf.evaluation.suite.score_suite`.
A finished variant is skipped and an interrupted one resumes from its checkpoint, so the command can be run
again until the table is complete. Writes `<output_dir>/ablation.json` (each row's command and figures) and
prints the table; the dev sets measure, they never select (every run trains its fixed number of steps).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

VARIANTS = {
    "base": [],
    "balanced": ["--class_balanced_sampling", "true"],
    "logit_adjust": ["--logit_adjustment", "1.0"],
    "cutmix": ["--cutmix_prob", "0.5"],
    "colour": ["--color_jitter", "0.2"],
    "trivialaugment": ["--augment_policy", "trivialaugment"],
    "randaugment": ["--augment_policy", "randaugment"],
    "crop": ["--crop_scale", "0.7"],
    "ema": ["--ema_decay", "0.999"],
    "fer2013_labels": ["--second_labels", "{data_root}/fer2013", "--second_label_weight", "0.3"],
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="scripts/configs/ferplus_teacher_cpu.yaml")
    p.add_argument("--steps", type=int, default=1500, help="Training steps of every variant (equal steps).")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS),
                   help=f"Rows to run: names from {list(VARIANTS)}, or name=--flag,value,... for your own.")
    p.add_argument("--data_root", default="../shared/data")
    p.add_argument("--output_dir", default=None, help="Default: outputs/ablation_<recipe>_<steps>.")
    p.add_argument("--extra", default="", help="Flags added to every run (quoted), e.g. '--teacher_model none'.")
    p.add_argument("--results", default=None, help="Also copy the table (JSON) here, e.g. results/ablation_teacher.json.")
    return p.parse_args(argv)


def variant_flags(spec: str, data_root: str) -> tuple[str, list[str]]:
    name, _, flags = spec.partition("=")
    if flags:
        return name, flags.split(",")
    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r}: use one of {list(VARIANTS)} or name=--flag,value")
    return name, [f.format(data_root=data_root) for f in VARIANTS[name]]


def run_variant(recipe, steps, out, flags, extra) -> tuple[list[str], float]:
    cmd = ["accelerate", "launch", "scripts/train.py", recipe, "--max_steps", str(steps), "--time_budget_minutes", "0",
           "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "250", "--save_total_limit", "1",
           "--load_best_model_at_end", "false", "--report_to", "none", "--output_dir", out, *flags, *extra]
    start = time.monotonic()
    with open(out + ".log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return cmd, time.monotonic() - start


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from transformers import AutoModelForImageClassification

    from fer_hf.evaluation.suite import format_suite, score_suite, suite_sets

    recipe_name = os.path.splitext(os.path.basename(args.recipe))[0]
    root = args.output_dir or f"outputs/ablation_{recipe_name}_{args.steps}"
    os.makedirs(root, exist_ok=True)
    table_path = os.path.join(root, "ablation.json")
    table = read_table(table_path)
    sets = suite_sets(args.data_root)
    for spec in args.variants:
        name, flags = variant_flags(spec, args.data_root)
        if name in table:
            continue
        out = os.path.join(root, name)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: training {args.steps} steps ({out}.log)", flush=True)
        cmd, seconds = run_variant(args.recipe, args.steps, out, flags, shlex.split(args.extra))
        model = AutoModelForImageClassification.from_pretrained(out).eval()
        results = score_suite(model, sets)
        table[name] = {"command": shlex.join(cmd), "train_seconds": round(seconds, 1), "results": results}
        with open(table_path, "w") as f:
            json.dump(table, f, indent=2)
        print(f"{name}:\n{format_suite(results)}\n", flush=True)
    print(summary(table))
    if args.results:
        os.makedirs(os.path.dirname(args.results) or ".", exist_ok=True)
        with open(args.results, "w") as f:
            json.dump(table, f, indent=2)
    return table


def read_table(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def summary(table: dict) -> str:
    """A row per variant: accuracy and macro-F1 on each set, and the change of accuracy against `base`."""
    sets = list(next(iter(table.values()))["results"]) if table else []
    base = table.get("base", {}).get("results")
    head = "| variant | " + " | ".join(f"{s} acc / F1" for s in sets) + " |"
    lines = [head, "|---" + "|---:" * len(sets) + "|"]
    for name, row in table.items():
        cells = []
        for s in sets:
            m = row["results"][s]
            delta = f" ({100 * (m['accuracy'] - base[s]['accuracy']):+.1f})" if base and name != "base" else ""
            cells.append(f"{m['accuracy']:.3f}{delta} / {m['macro_f1']:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
