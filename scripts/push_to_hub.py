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
import json
import logging
import os
import re
import shutil
import sys
import tempfile

from fer_hf.hub.model_card import read_evals
from fer_hf.hub.publish import check_model, known_tokens, stage
from fer_hf.hub.staging import (
    require_token,
    upload_command,
    upload_stage,
)
from fer_hf.utils.offline import require_hub

logger = logging.getLogger("fer_hf.push_to_hub")
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
    files = stage(args, evals, target, known_tokens(os.environ))  # a token in the staged files is refused
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
