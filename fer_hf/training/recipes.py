"""Run recipes: a YAML file read by `HfArgumentParser`, with command-line overrides that win.

`accelerate launch scripts/train.py recipe.yaml --learning_rate 1e-3` reads the YAML values as the
parser's defaults, then parses the command line on top, so every key keeps its type and help text
and an unknown key in the YAML is an error naming it.
"""

from __future__ import annotations

import os

import yaml
from transformers import HfArgumentParser


def _flag_values(argv: list[str], flags_without_value: dict[str, str]) -> list[str]:
    """`--resume_from_checkpoint` given bare (last, or before another flag) gets its default value."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in flags_without_value and (nxt is None or nxt.startswith("--")):
            out.append(flags_without_value[arg])
    return out


def parse_args(dataclass_types, argv: list[str] | None, bare_flags: dict[str, str] | None = None):
    """Dataclass instances from `[recipe.yaml] [--key value ...]`."""
    argv = list(argv or [])
    parser = HfArgumentParser(dataclass_types)
    if argv and argv[0].endswith((".yaml", ".yml")):
        path = argv.pop(0)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"recipe {path!r} does not exist (expected a YAML file, e.g. scripts/configs/quickstart.yaml)")
        with open(path) as f:
            recipe = yaml.safe_load(f) or {}
        known = {action.dest for action in parser._actions}
        if unknown := sorted(set(recipe) - known):
            raise ValueError(f"{path}: unknown keys {unknown}; run with --help to list the valid ones.")
        parser.set_defaults(**recipe)
    return parser.parse_args_into_dataclasses(args=_flag_values(argv, bare_flags or {}), look_for_args_file=False)
