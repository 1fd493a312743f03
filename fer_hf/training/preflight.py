"""Before a run trains: where it resumes from, and whether what it will need at the end is there now.

A killed run continues from the last complete checkpoint in its output_dir (`trainer.last_complete_checkpoint`
skips a half-written one); a run that would push to the Hub at the end must find the Hub and a token first, not
hours later.
"""

from __future__ import annotations

import logging
import os

from ..utils.offline import require_hub
from .trainer import FerTrainingArguments, last_complete_checkpoint

logger = logging.getLogger("fer_hf.train")


def resume_point(args: FerTrainingArguments) -> str | None:
    """The checkpoint to resume from: the one asked for, or the last complete one in output_dir."""
    asked = args.resume_from_checkpoint
    if asked and asked.lower() not in ("last", "true", "auto"):
        if not os.path.isdir(asked):
            raise FileNotFoundError(f"--resume_from_checkpoint {asked!r}: no such checkpoint folder")
        return asked
    if args.overwrite_output_dir:
        return None
    found = last_complete_checkpoint(args.output_dir)
    if found:
        logger.info("Resuming from %s (pass --overwrite_output_dir to start afresh).", found)
    elif asked:
        logger.warning("--resume_from_checkpoint: no complete checkpoint in %s; starting from scratch.", args.output_dir)
    return found


def check_hub_first(args: FerTrainingArguments) -> None:
    """A run that would push at the end must find the Hub and a token *before* it trains for hours."""
    if not args.push_to_hub:
        return
    require_hub("push_to_hub", "Train without --push_to_hub and publish later with scripts/push_to_hub.py "
                "(its --local_dir stages the folder offline).")
    from huggingface_hub import get_token

    if not (args.hub_token or get_token()):
        raise RuntimeError("push_to_hub needs a token: set HF_TOKEN or run `hf auth login` before training.")
