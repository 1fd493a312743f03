"""Publish a trained model to the Hugging Face Hub: stage the exact folder, then upload it as one commit.

    python scripts/push_to_hub.py --model outputs/quickstart --repo_id USER/NAME \
        [--eval_dir outputs/eval ...] [--private] [--revision BRANCH] [--local_dir STAGE [--upload]]

The staged folder holds model.safetensors (timm's key layout, which transformers loads too),
config.json and preprocessor_config.json copied unchanged (labels, timm pretrained_cfg, calibration
temperature), the model card README.md, all_results.json, class_counts.json, the TensorBoard event
files under runs/, and per `--eval_dir` eval/<name>/ with metrics.json, report.md and the figures.
Never checkpoint-* folders, training_args.bin (a pickle), optimizer states, or a token.

`--local_dir STAGE` stages there and stops (offline); add `--upload` to also upload it. Without
`--local_dir` the folder is staged in a temporary folder, uploaded, and removed. An upload that cannot
happen (Hub out of reach, no token) fails in seconds, before any staging, and says how to stage
offline and the `hf upload` command that publishes the staged folder later. The card shows timm
usage only after timm was seen loading the staged folder.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone without install

from fer_hf.hub import (check_stage_target, require_hub, require_token, safetensors_header, token_leaks, upload_command,
                        upload_stage, write_timm_weights)
from fer_hf.model_card import build_model_card, read_evals

logger = logging.getLogger("fer_hf.push_to_hub")
COPIED = ("config.json", "preprocessor_config.json", "all_results.json", "class_counts.json")
EVAL_FILES = ("metrics.json", "report.md", "confusion_matrix.png", "reliability.png")
STAGED = ("README.md", "model.safetensors", *COPIED, "runs/*/events.out.tfevents.*", "runs/events.out.tfevents.*",
          *[f"eval/*/{f}" for f in EVAL_FILES])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="The trained model folder (output_dir of scripts/train.py).")
    p.add_argument("--repo_id", required=True, help="Hub model repo, USER/NAME (created if missing).")
    p.add_argument("--eval_dir", nargs="*", default=[], help="scripts/evaluate.py output folders for the card.")
    p.add_argument("--private", action="store_true", help="Create the repo private (an existing repo keeps its visibility).")
    p.add_argument("--revision", default=None, help="Branch to commit to (created if missing; default main).")
    p.add_argument("--local_dir", default=None, help="Stage here and stop (no upload unless --upload).")
    p.add_argument("--upload", action="store_true", help="With --local_dir: upload the staged folder too.")
    p.add_argument("--overwrite_local_dir", action="store_true", help="Replace a folder this script staged before.")
    p.add_argument("--license", default="auto", help="Card licence id (e.g. apache-2.0, cc-by-nc-4.0), none, or auto: "
                   "apache-2.0 when trained on synthetic data only, else none declared.")
    p.add_argument("--commit_message", default=None, help="Default: 'Upload <NAME> (fer-hf)'.")
    args = p.parse_args(argv)
    args.license = None if args.license.lower() in ("none", "") else args.license
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", args.repo_id):
        p.error(f"--repo_id {args.repo_id!r}: expected USER/NAME (letters, digits, '-', '_', '.').")
    return args


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
    except Exception as err:  # whatever the reason, the card must not promise timm loading
        reason = str(err).splitlines()[0].replace(folder, ".") if str(err) else ""
        return {"ok": False, "version": timm.__version__, "error": f"{type(err).__name__}: {reason}"}


def stage(args, evals: dict, target: str) -> list[str]:
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
        if leaks := token_leaks(tmp, known_tokens()):
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


def known_tokens() -> list[str]:
    """Every token this machine could upload with: HF_TOKEN and the tokens `hf auth login` stored.

    Read directly rather than through `get_token()`, which may refresh an OAuth token over the network.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_stored_tokens

    tokens = [os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN"), *get_stored_tokens().values()]
    if os.path.isfile(constants.HF_TOKEN_PATH):
        with open(constants.HF_TOKEN_PATH) as f:
            tokens.append(f.read().strip())
    return [t for t in tokens if t]


def hub_ready(args, target: str | None) -> str:
    """The token, once the Hub answers: checked in seconds, BEFORE staging, so a failure costs nothing."""
    where = target or "STAGE"
    kept = f" ({target} is untouched)" if target and os.path.exists(target) else ""
    instead = (f"Nothing was staged or uploaded{kept}. Stage the folder offline with the same command, "
               f"`--local_dir {where}` and no `--upload`, then publish it from a machine that reaches the Hub: "
               f"`{upload_command(args.repo_id, where, args.private, args.revision)}`.")
    require_hub(f"Uploading to {args.repo_id}", instead)
    return require_token(instead)


def upload(args, target: str, token: str) -> str:
    """Upload the staged folder as one commit; a failure says where the folder is and how to retry."""
    try:
        return upload_stage(target, args.repo_id, token, private=args.private, revision=args.revision,
                            commit_message=args.commit_message or f"Upload {args.repo_id.split('/')[-1]} (fer-hf)")
    except Exception as err:
        raise RuntimeError(f"Upload to {args.repo_id} failed: {type(err).__name__}: {err}. The staged folder is intact "
                           f"at {target}: `{upload_command(args.repo_id, target, args.private, args.revision)}` "
                           "retries it.") from err


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fer_hf").setLevel(logging.INFO)
    check_model(args.model)
    evals = read_evals(args.eval_dir, args.model)
    target = os.path.abspath(os.path.expanduser(args.local_dir)) if args.local_dir else None
    uploading = target is None or args.upload
    token = hub_ready(args, target) if uploading else None
    temporary = target is None  # staged only to be uploaded: removed once it is
    target = target or tempfile.mkdtemp(prefix="fer_hf_stage-")
    files = stage(args, evals, target)
    logger.info("Staged %d files in %s", len(files), target)
    result = {"repo_id": args.repo_id, "stage": target, "files": files, "uploaded": False, "commit_url": None}
    if uploading:
        result["commit_url"], result["uploaded"] = upload(args, target, token), True
        logger.info("Uploaded to %s", result["commit_url"])
        if temporary:
            shutil.rmtree(target)
            result["stage"] = None
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
