"""Publishing a model folder: the exact folder that is uploaded, staged from a run folder and its evaluations.

`stage` copies the allow-listed files (config, preprocessor, results, class counts, TensorBoard events), writes the
weights in timm's key layout and the model card, checks that timm loads the staged folder and that no token leaked
into it. scripts/push_to_hub.py stages with it and uploads the folder as one commit (`staging.upload_stage`).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile

from .model_card import build_model_card
from .staging import check_stage_target, safetensors_header, token_leaks, write_timm_weights

COPIED = ("config.json", "preprocessor_config.json", "all_results.json", "class_counts.json")
EVAL_FILES = ("metrics.json", "report.md", "confusion_matrix.png", "reliability.png")
STAGED = ("README.md", "model.safetensors", *COPIED, "runs/*/events.out.tfevents.*", "runs/events.out.tfevents.*",
          *[f"eval/*/{f}" for f in EVAL_FILES])


def check_model(model_dir: str) -> None:
    for name in ("config.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(model_dir, name)):
            found = sorted(d for d in os.listdir(model_dir) if d.startswith("checkpoint-")) if os.path.isdir(model_dir) else []
            hint = f" It holds {', '.join(found)}: pass one of those, or let training finish." if found else ""
            raise FileNotFoundError(f"--model {model_dir!r} has no {name}; expected a saved model folder "
                                    f"(the output_dir of scripts/train.py).{hint}")


def copy_files(model_dir: str, evals: dict, tmp: str) -> None:
    """Everything but the card, into `tmp`: an allow-list, so nothing else can slip in."""
    write_timm_weights(os.path.join(model_dir, "model.safetensors"), os.path.join(tmp, "model.safetensors"))
    for name in COPIED:  # copied byte for byte: a config re-saved through transformers can lose keys
        if os.path.isfile(os.path.join(model_dir, name)):
            shutil.copy2(os.path.join(model_dir, name), os.path.join(tmp, name))
    runs = os.path.join(model_dir, "runs")
    for root, _, files in os.walk(runs):
        for name in files:
            if name.startswith("events.out.tfevents."):
                dst = os.path.join(tmp, "runs", os.path.relpath(os.path.join(root, name), runs))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(os.path.join(root, name), dst)
    for name, (folder, _) in evals.items():
        os.makedirs(os.path.join(tmp, "eval", name))
        for f in EVAL_FILES:
            if os.path.isfile(os.path.join(folder, f)):
                shutil.copy2(os.path.join(folder, f), os.path.join(tmp, "eval", name, f))


def parameter_count(weights: str) -> int:
    from math import prod

    return sum(prod(v["shape"]) for k, v in safetensors_header(weights).items() if k != "__metadata__")


def staged_files(folder: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(r, n), folder).replace(os.sep, "/") for r, _, fs in os.walk(folder) for n in fs)


def timm_check(folder: str) -> dict:
    """Load `folder` as a timm user would: the card shows timm usage only if this works."""
    import timm

    try:
        timm.create_model(f"local-dir:{folder}", pretrained=True)
        return {"ok": True, "version": timm.__version__}
    except Exception as err:  # noqa: BLE001 - whatever the reason, the card must not promise timm loading
        reason = str(err).splitlines()[0].replace(folder, ".") if str(err) else ""
        return {"ok": False, "version": timm.__version__, "error": f"{type(err).__name__}: {reason}"}


def stage(args, evals: dict, target: str, tokens: list[str]) -> list[str]:
    """Build the folder beside `target`, check it, then move it into place (never half-written)."""
    replace = check_stage_target(target, args.overwrite_local_dir, lambda p: any(fnmatch.fnmatch(p, g) for g in STAGED))
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".fer_hf_staging-", dir=parent)
    try:
        copy_files(args.model, evals, tmp)
        files = {"staged": set(staged_files(tmp)), "timm": timm_check(tmp),
                 "n_parameters": parameter_count(os.path.join(tmp, "model.safetensors"))}
        card = build_model_card(args.model, args.repo_id, {n: m for n, (_, m) in evals.items()}, args.license, files)
        card.save(os.path.join(tmp, "README.md"))
        if leaks := token_leaks(tmp, tokens):
            raise RuntimeError(f"Refusing to stage: {', '.join(leaks)} would publish an access token. Remove it "
                               f"from the files in {args.model} (or the eval folders) and run again.")
        if replace:
            shutil.rmtree(target)
        elif os.path.isdir(target):
            os.rmdir(target)  # empty: os.replace below needs the name free on every platform
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return staged_files(target)


def known_tokens(environ) -> list[str]:
    """Every token this machine could upload with: HF_TOKEN in `environ` (the entry point's os.environ) and the
    tokens `hf auth login` stored.

    Read directly rather than through `get_token()`, which may refresh an OAuth token over the network.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_stored_tokens

    tokens = [environ.get("HF_TOKEN"), environ.get("HUGGING_FACE_HUB_TOKEN"), *get_stored_tokens().values()]
    if os.path.isfile(constants.HF_TOKEN_PATH):
        with open(constants.HF_TOKEN_PATH) as f:
            tokens.append(f.read().strip())
    return [t for t in tokens if t]


