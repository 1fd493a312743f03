"""Staging and uploading a model folder (scripts/push_to_hub.py).

The staged folder is exactly what is uploaded (allow-listed files, weights in timm's key layout, the model
card), then uploaded as one commit; everything that must never reach the Hub (checkpoints, the pickled
training_args.bin, optimizer states, tokens) is kept out by an allow-list rather than filtered out afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import struct

TOKEN_PATTERN = re.compile(rb"hf_[A-Za-z0-9]{30,}")  # the shape of a Hugging Face access token
WRAPPER_PREFIX = "timm_model."
# What a training-time push (`--push_to_hub`: Trainer uploads output_dir) leaves in a repo that a staged
# folder never has: the pickled arguments and resumable checkpoints. Deleted in the same commit.
NEVER_PUBLISHED = ["training_args.bin", "last-checkpoint/*", "checkpoint-*/*"]


class MissingTokenError(RuntimeError):
    """An upload was asked for but no Hugging Face token is configured."""


def require_token(instead: str) -> str:
    """The token from the standard places (HF_TOKEN, `hf auth login`), else `MissingTokenError`."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise MissingTokenError(f"Uploading needs a Hugging Face token: set HF_TOKEN or run `hf auth login`. {instead}")
    return token


def safetensors_header(path: str) -> dict:
    """The JSON header of a safetensors file (names, dtypes, shapes, offsets), read without a framework."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def write_timm_weights(src: str, dst: str) -> None:
    """Copy a safetensors file with the `timm_model.` prefix of TimmWrapper's keys stripped.

    That is the layout of timm's own Hub repos: `timm.create_model("hf-hub:...")` needs it, and
    transformers' TimmWrapper adds the prefix back on load, so one file serves both libraries. Only
    the JSON header changes; the tensor bytes are copied as they are (and torch is not even imported).
    """
    header = safetensors_header(src)
    renamed = {k if k == "__metadata__" else k.removeprefix(WRAPPER_PREFIX): v for k, v in header.items()}
    if len(renamed) != len(header):
        raise ValueError(f"{src}: tensor names clash once the {WRAPPER_PREFIX!r} prefix is removed.")
    raw = json.dumps(renamed, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads its header so the tensor data stays 8-byte aligned
    with open(src, "rb") as f, open(dst, "wb") as out:
        (size,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + size)
        out.write(struct.pack("<Q", len(raw)) + raw)
        shutil.copyfileobj(f, out, 16 * 2**20)


def token_leaks(folder: str, tokens: list[str]) -> list[str]:
    """Files under `folder` holding one of `tokens` or anything shaped like an HF token (names only)."""
    needles = [t.encode() for t in tokens if t]
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            if any(n in data for n in needles) or TOKEN_PATTERN.search(data):
                found.append(os.path.relpath(path, folder))
    return sorted(found)


def check_stage_target(stage: str, overwrite: bool, allowed) -> bool:
    """Whether `stage` can take a new staging: absent or empty (False), or a former stage to replace (True).

    `allowed(relpath)` says whether a file belongs to a staged folder; a folder holding anything else
    is never replaced, so a mistyped `--local_dir ~` cannot wipe a home directory.
    """
    if not os.path.exists(stage) or (os.path.isdir(stage) and not os.listdir(stage)):
        return False
    if not os.path.isdir(stage):
        raise FileExistsError(f"--local_dir {stage!r} is a file; expected a folder to stage the model in.")
    if not overwrite:
        raise FileExistsError(f"--local_dir {stage!r} is not empty. Pass --overwrite_local_dir to replace a folder "
                              "this script staged before, or choose an empty folder.")
    found = [os.path.relpath(os.path.join(r, n), stage) for r, _, fs in os.walk(stage) for n in fs]
    if foreign := sorted(p for p in found if not allowed(p)):
        raise FileExistsError(f"--local_dir {stage!r} holds files a staged model folder never has "
                              f"({', '.join(foreign[:5])}); not replacing it. Choose an empty folder.")
    return True


def upload_command(repo_id: str, stage: str, private: bool = False, revision: str | None = None) -> str:
    """The `hf upload` command that uploads `stage` later, from a machine that reaches the Hub."""
    cmd = ["hf", "upload", repo_id, stage]
    if private:
        cmd.append("--private")
    if revision:
        cmd += ["--revision", revision]
    return " ".join(shlex.quote(c) for c in cmd)


def upload_stage(stage: str, repo_id: str, token: str, private: bool = False, revision: str | None = None,
                 commit_message: str = "Upload fer-hf model") -> str:
    """Create the repo (and branch) if needed and upload `stage` as ONE commit; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=stage, revision=revision, commit_message=commit_message,
                             delete_patterns=NEVER_PUBLISHED)
    return info.commit_url
