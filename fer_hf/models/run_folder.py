"""`RunFolder`: a model/run folder's files, read once, in one place.

scripts/train.py writes a run folder: the model (config.json + weights), `train_args.json` (the model, data and
training arguments, the teacher, the time budget), `all_results.json`, `class_counts.json` and
`trainer_state.json`. The model card, the model chooser, distillation, the time budget, evaluation and the curves
all read them through this class. A missing optional file is an empty value; an unreadable one is too (a run
killed while writing must not break the tools that look at it).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ARGS_FILE, RESULTS_FILE, COUNTS_FILE, STATE_FILE = "train_args.json", "all_results.json", "class_counts.json", \
    "trainer_state.json"


def read_json(path: str) -> dict | None:
    """A JSON file's object, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def tensorboard_args(path: str) -> dict | None:
    """The TrainingArguments JSON that transformers' TensorBoard callback logs as text, latest run first."""
    files = glob.glob(os.path.join(path, "runs", "**", "events.out.tfevents.*"), recursive=True)
    if not files:
        return None
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    except ImportError:
        return None

    def started(name):  # events.out.tfevents.<unix time>.<host>...: a resumed run's files come later
        stamp = os.path.basename(name).split(".")[3]
        return int(stamp) if stamp.isdigit() else 0

    for name in sorted(files, key=started, reverse=True):
        for event in EventFileLoader(name).Load():
            for value in event.summary.value:
                if value.tag.startswith("args") and value.metadata.plugin_data.plugin_name == "text":
                    return json.loads(value.tensor.string_val[0].decode())
    return None


@dataclass
class RunFolder:
    """What a run folder holds. `args` are the training arguments (train_args.json, else the TensorBoard log)."""

    path: str
    config: dict = field(default_factory=dict)
    args: dict = field(default_factory=dict)
    data_args: dict = field(default_factory=dict)
    model_args: dict = field(default_factory=dict)
    args_from: str | None = None
    budget: dict | None = None
    teacher: dict | None = None
    results: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    counts: dict | None = None

    @classmethod
    def read(cls, path: str, require_model: bool = True) -> RunFolder:
        """Read every file once; with `require_model`, a folder without config.json is an error naming it."""
        path = os.fspath(path)
        config = read_json(os.path.join(path, "config.json"))
        if config is None and require_model:
            raise FileNotFoundError(f"model folder {path!r} has no config.json (expected a scripts/train.py output "
                                    "folder)")
        saved = read_json(os.path.join(path, ARGS_FILE))  # {"model":, "data":, "training":, ...} or flat
        args, args_from = None, None
        if saved is not None:
            args, args_from = saved.get("training", saved), ARGS_FILE
        elif config is not None and (args := tensorboard_args(path)) is not None:
            args_from = "the TensorBoard log (runs/)"
        saved = saved or {}
        return cls(path=path, config=config or {}, args=args or {}, data_args=saved.get("data") or {},
                   model_args=saved.get("model") or {}, args_from=args_from, budget=saved.get("time_budget"),
                   teacher=saved.get("teacher"), results=read_json(os.path.join(path, RESULTS_FILE)) or {},
                   state=read_json(os.path.join(path, STATE_FILE)) or {},
                   counts=read_json(os.path.join(path, COUNTS_FILE)))

    @staticmethod
    def is_model_folder(path: str) -> bool:
        """A finished model folder: config.json and weights (a run still training has only checkpoints)."""
        return os.path.isfile(os.path.join(path, "config.json")) and any(
            os.path.isfile(os.path.join(path, w)) for w in WEIGHT_FILES)

    @property
    def sources(self) -> list[str]:
        """The training sources, by name (class_counts.json)."""
        return sorted({s for per_source in (self.counts or {}).values() for s in per_source})

    @property
    def synthetic_only(self) -> bool:
        return bool(self.sources) and all(s.startswith("synthetic") for s in self.sources)

    def images(self, split: str) -> int | None:
        """How many images a split held (class_counts.json), or None."""
        per_source = (self.counts or {}).get(split)
        return sum(sum(c.values()) for c in per_source.values()) if per_source else None

    def metric(self, key: str) -> float | None:
        """A number from all_results.json (e.g. eval_accuracy), or None."""
        value = self.results.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def train_seconds(self) -> float | None:
        """Seconds the whole run trained: `train_runtime_total` (every part of a resumed run, TrainingClock), else
        `train_runtime` unless the run is known to have resumed (then that is only its last part's), else None."""
        total = self.metric("train_runtime_total")
        if total is not None:
            return total
        return None if (self.budget or {}).get("resumed") else self.metric("train_runtime")

    def validation_metrics(self) -> dict:
        """The run's own end-of-training validation figures (what a student records of its teacher)."""
        keep = ("eval_accuracy", "eval_macro_f1", "eval_balanced_accuracy", "eval_samples")
        return {k: self.results[k] for k in keep if k in self.results}

    @property
    def log_history(self) -> list[dict]:
        """trainer_state.json's log history (a resumed run carries it on)."""
        return list(self.state.get("log_history", []))

    @property
    def seed(self) -> int | None:
        return self.args.get("seed")
