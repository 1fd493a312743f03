"""Prepare a raw FER source once into a Hub-layout dataset folder (and optionally push it).

    python scripts/prepare_data.py --format fer2013 --input fer2013.csv --output_dir data/fer2013
    python scripts/prepare_data.py --format ferplus --input fer2013.csv --ferplus_votes fer2013new.csv \
        --output_dir data/ferplus
    python scripts/prepare_data.py --format rafdb --input RAF-DB/basic --output_dir data/rafdb
    python scripts/prepare_data.py --format affectnet --input AffectNet/ --output_dir data/affectnet
    python scripts/prepare_data.py --format imagefolder --input my_faces/ --output_dir data/mine \
        [--push_to_hub org/name]

Every image is decoded once: unreadable ones are listed in OUT/rejected.csv, odd ones (16-bit, CMYK,
palette, EXIF-rotated) are converted and kept, so training on OUT never meets a bad image. OUT holds
`data/*.parquet`, a dataset card (`README.md`), `rejected.csv`, `class_counts.json` and
`prepare_results.json`; train on it with `--datasets OUT`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from fer_hf.data.dataset_card import report_text, write_dataset
from fer_hf.data.prepare import FORMATS, read_source
from fer_hf.utils.offline import hub_problem, require_hub

logger = logging.getLogger("fer_hf.prepare_data")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", required=True, choices=FORMATS, help="Layout of the raw source.")
    parser.add_argument("--input", required=True,
                        help="fer2013.csv (fer2013, ferplus); the RAF-DB basic folder; an AffectNet folder or "
                             "annotation csv; a folder of emotion-named class folders (imagefolder).")
    parser.add_argument("--ferplus_votes", help="fer2013new.csv with the FER+ vote counts (--format ferplus).")
    parser.add_argument("--output_dir", required=True, help="The dataset folder to write.")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="Replace the shards of an earlier run.")
    parser.add_argument("--shard_size", type=int, default=10_000, help="Rows per parquet shard.")
    parser.add_argument("--push_to_hub", metavar="REPO_ID", help="Upload the prepared folder as a Hub dataset repo.")
    parser.add_argument("--private", action="store_true", help="Create the Hub repo as private.")
    args = parser.parse_args(argv)
    if args.shard_size < 1:
        parser.error("--shard_size must be at least 1")
    return args


def push(folder: str, repo_id: str, private: bool) -> str:
    """Upload the prepared folder as it is (card included); the Hub is checked first, in seconds."""
    require_hub(f"--push_to_hub {repo_id}",
                f"The prepared dataset folder {folder} is ready: train on it with --datasets {folder}, and upload it "
                f"later with `hf upload {repo_id} {folder} --repo-type dataset` or by rerunning with --push_to_hub.")
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset",
                           commit_message="Add dataset prepared by fer-hf scripts/prepare_data.py")
    return getattr(commit, "commit_url", str(commit))


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    if args.push_to_hub and (problem := hub_problem()):
        # Not fatal yet: the local folder is worth having; the push itself fails (clearly) at the end.
        logger.warning("--push_to_hub %s will fail (%s); preparing the local folder anyway.", args.push_to_hub, problem)

    source = read_source(args.format, args.input, args.ferplus_votes)
    report = write_dataset(source, args.output_dir, args.shard_size, args.overwrite_output_dir)
    print(f"\n{args.format} -> {args.output_dir}: {report['splits']}\n{report_text(report)}\n")
    with open(os.path.join(args.output_dir, "prepare_results.json"), "w") as f:
        json.dump(report, f, indent=2)

    if args.push_to_hub:
        report["hub_url"] = push(args.output_dir, args.push_to_hub, args.private)
        print(f"pushed to {report['hub_url']}")
    return report


if __name__ == "__main__":
    main()
