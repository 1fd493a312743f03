"""Which model to serve when none is named, and what it is: name, training data, validation accuracy.

    path, why = find_best_model()          # e.g. ("outputs/ferplus_vit_tiny_cpu", "the FER+ recipe's ...")
    facts = model_facts(path)              # shown on the Space's page and under "model" in its API result

The best model is the first recipe family with a finished model folder (config.json and weights) under
`outputs/`: the FER+ recipes (`ferplus_vit_tiny_cpu`, the distilled ViT-Tiny, and `ferplus_teacher_cpu`, its
CNN teacher; of the two, the one with the higher validation accuracy in all_results.json, the student on a
tie or when neither recorded one), then FER2013's (`fer2013_cpu`), then the quickstart's (`quickstart`, drawn
synthetic faces only). Folders still training (checkpoints, no config.json) are passed over. `roots`
names other folders to look in (the entry points pass FER_OUTPUTS).

Every fact is read from the model folder's own files (config.json, class_counts.json, all_results.json,
train_args.json, through fer_hf.models.run_folder); what was not recorded is None, never guessed. A model trained
only on fer_hf's synthetic faces carries a `warning` that it is not meant for photos.
"""

from __future__ import annotations

import logging
import os

from ..models.run_folder import RunFolder

logger = logging.getLogger(__name__)

# (family, folders under outputs/ in order of preference): the first family with a finished folder wins.
RECIPES = (("FER+", ("ferplus_vit_tiny_cpu", "ferplus_teacher_cpu")),
           ("FER2013", ("fer2013_cpu",)),
           ("quickstart (synthetic faces)", ("quickstart",)))
SYNTHETIC_WARNING = ("This model was trained only on fer_hf's drawn synthetic faces (the quickstart): it is not "
                     "meant for photos, and its answers on real faces mean nothing. Train the real model "
                     "(README: \"Your own photo\") and serve that.")
TRAIN_HINT = ("accelerate launch scripts/train.py scripts/configs/quickstart.yaml (a few minutes, synthetic faces), "
              "or scripts/configs/ferplus_teacher_cpu.yaml (then ferplus_vit_tiny_cpu.yaml) for the model meant for photos")


def validation_accuracy(path: str) -> float | None:
    return RunFolder.read(path, require_model=False).metric("eval_accuracy")


def default_roots() -> list[str]:
    """`outputs/` under the working directory, then under the clone this package sits in."""
    roots = [os.path.abspath("outputs"), os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "outputs")]
    return list(dict.fromkeys(roots))


def find_best_model(roots: list[str] | None = None) -> tuple[str, str] | None:
    """(model folder, why it was chosen) of the best finished recipe under `roots`, or None."""
    for family, names in RECIPES:
        for root in roots or default_roots():
            ready = [os.path.join(root, n) for n in names if RunFolder.is_model_folder(os.path.join(root, n))]
            if not ready:
                continue
            # highest validation accuracy; the recipe listed first (the student) on a tie or with none recorded
            best = max(ready, key=lambda p: (validation_accuracy(p) or -1.0, -ready.index(p)))
            others = [os.path.basename(p) for p in ready if p != best]
            why = f"the {family} recipe's model, the best finished one found under {root}"
            if others:
                why += f" (higher validation accuracy than {', '.join(others)}, or preferred on a tie)"
            return best, why
    return None


def resolve_model(model: str | None, roots: list[str] | None = None) -> str:
    """`model` if given (the entry points pass --model or FER_MODEL), else the best folder under `roots` (default:
    outputs/), logged; a clear error if there is none."""
    if model:
        return model
    found = find_best_model(roots)
    if found is None:
        looked = [os.path.join(r, n) for r in roots or default_roots() for _, names in RECIPES for n in names]
        raise FileNotFoundError("no model given (--model or FER_MODEL) and no trained model folder found; looked in "
                                f"{', '.join(looked)}. Train one first: {TRAIN_HINT}.")
    path, why = found
    logger.info("Serving %s: %s.", path, why)
    return path


def model_facts(name_or_path: str, backend: str | None = None) -> dict:
    """Name, architecture, training sources and images, validation accuracy, and a warning for synthetic-only models."""
    path = os.fspath(name_or_path)
    folder = os.path.dirname(path) if path.endswith(".onnx") else path
    # no local path among the facts: they go into the Space's API result, where a path means a file to serve
    facts = {"name": os.path.basename(os.path.normpath(path)) or path, "backend": backend,
             "architecture": None, "trained_on": None, "training_images": None, "synthetic_only": False,
             "validation_accuracy": None, "validation_macro_f1": None, "validation_images": None, "warning": None}
    if not os.path.isfile(os.path.join(folder, "config.json")):
        return facts  # a Hub id or a bare ONNX file: nothing recorded locally
    run = RunFolder.read(folder)
    facts.update(architecture=run.config.get("architecture"), trained_on=run.sources or None,
                 training_images=run.images("train"), validation_images=run.images("validation"),
                 synthetic_only=run.synthetic_only)
    for key, name in (("eval_accuracy", "validation_accuracy"), ("eval_macro_f1", "validation_macro_f1")):
        if run.metric(key) is not None:
            facts[name] = round(run.metric(key), 4)
    if facts["synthetic_only"]:
        facts["warning"] = SYNTHETIC_WARNING
    return facts


def describe(facts: dict) -> str:
    """One line for logs and the page: name, architecture, data, validation accuracy."""
    arch = f" ({facts['architecture']})" if facts.get("architecture") else ""
    data = ", ".join(facts["trained_on"]) if facts.get("trained_on") else "not recorded"
    if facts.get("training_images"):
        data += f" ({facts['training_images']:,} images)"
    acc = facts.get("validation_accuracy")
    acc_text = f"{acc:.1%}" if acc is not None else "not recorded"
    if acc is not None and facts.get("validation_images"):
        acc_text += f" on {facts['validation_images']:,} held-out images"
    return f"{facts['name']}{arch}; trained on {data}; validation accuracy {acc_text}"
