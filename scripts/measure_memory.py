"""Peak memory of a short training run, measured in-process (target: under 3 GiB on FER2013).

    OMP_NUM_THREADS=1 python scripts/measure_memory.py [--dataset ../shared/data/fer2013] [--max_steps 200]

Runs scripts/train.py's `main` in this process on a prepared dataset, with a small model (ViT-Tiny
width, 48 px, patch 8, 6 blocks by default), and reports the peak resident set size three ways:
`getrusage(...).ru_maxrss` (the kernel's peak for this process, and for any dataloader workers),
`VmHWM` from /proc/self/status, and the highest `VmRSS` a background thread saw (with the time it
happened, to tell start-up from training). Images stay as encoded bytes in the memory-mapped Arrow
cache and are decoded lazily per batch, so the peak should not grow with the dataset's size.
Writes `memory.json` into `--output_dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)  # run from a clone without install
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import train`

GIB = 1024 ** 3
DEFAULT_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "fer2013"))


def proc_status_bytes(field: str) -> int | None:
    """A `kB` line of /proc/self/status (VmRSS, VmHWM) in bytes; None where /proc does not exist."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Polls VmRSS every `interval` seconds; keeps the maximum and when it was reached."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval, self.start_time = interval, time.monotonic()
        self.peak, self.peak_at, self.samples = 0, 0.0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = proc_status_bytes("VmRSS") or 0
            if rss > self.peak:
                self.peak, self.peak_at = rss, time.monotonic() - self.start_time
            self.samples += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def maxrss_bytes(who: int) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # Linux reports KiB


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATA, help="A prepared dataset folder (Hub layout).")
    parser.add_argument("--max_steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--patch_size", type=int, default=8)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--max_eval_samples", type=int, default=512, help="Keep the closing evaluation short.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared machines: 1).")
    parser.add_argument("--target_gib", type=float, default=3.0)
    parser.add_argument("--output_dir", help="Where the run and memory.json go (default: a temporary folder).")
    return parser.parse_known_args(argv)  # anything else goes to scripts/train.py


def train_argv(args: argparse.Namespace, output_dir: str, extra: list[str]) -> list[str]:
    return [os.path.join(ROOT, "scripts", "configs", "quickstart.yaml"), "--datasets", args.dataset,
            "--output_dir", output_dir, "--overwrite_output_dir", "--init_from", "none",
            "--image_size", str(args.image_size), "--patch_size", str(args.patch_size),
            "--model_args", json.dumps({"depth": args.depth}), "--max_steps", str(args.max_steps),
            "--per_device_train_batch_size", str(args.batch_size), "--max_eval_samples", str(args.max_eval_samples),
            "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--logging_steps", "50", *extra]


def main(argv: list[str] | None = None) -> dict:
    args, extra = parse_args(argv)
    if not os.path.isdir(args.dataset):
        print(f"skipping: dataset folder {args.dataset} is absent (pass --dataset a prepared folder).")
        return {"skipped": f"{args.dataset} is absent"}
    import torch

    import train

    torch.set_num_threads(args.threads)
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="fer_memory_")
    baseline = proc_status_bytes("VmRSS")  # after the heavy imports: what training itself adds is the rest
    sampler = RssSampler()
    sampler.start()
    start = time.monotonic()
    try:
        metrics = train.main(train_argv(args, output_dir, extra))
    finally:
        sampler.stop()
    result = {
        "dataset": args.dataset, "max_steps": args.max_steps, "batch_size": args.batch_size,
        "image_size": args.image_size, "patch_size": args.patch_size, "depth": args.depth, "threads": args.threads,
        "train_samples": metrics.get("train_samples"), "skipped_images": metrics.get("skipped_images"),
        "wall_s": round(time.monotonic() - start, 1),
        "peak_rss_gib": round(maxrss_bytes(resource.RUSAGE_SELF) / GIB, 3),
        "peak_rss_children_gib": round(maxrss_bytes(resource.RUSAGE_CHILDREN) / GIB, 3),
        "vm_hwm_gib": round((proc_status_bytes("VmHWM") or 0) / GIB, 3),
        "sampled_peak_rss_gib": round(sampler.peak / GIB, 3), "sampled_peak_at_s": round(sampler.peak_at, 1),
        "baseline_rss_gib": round((baseline or 0) / GIB, 3), "target_gib": args.target_gib,
    }
    result["under_target"] = max(result["peak_rss_gib"], result["peak_rss_children_gib"]) < args.target_gib
    print(f"\nPeak RSS {result['peak_rss_gib']} GiB (ru_maxrss; VmHWM {result['vm_hwm_gib']} GiB, sampled "
          f"{result['sampled_peak_rss_gib']} GiB at {result['sampled_peak_at_s']} s, after imports "
          f"{result['baseline_rss_gib']} GiB) over {args.max_steps} steps of batch {args.batch_size}: "
          f"{'under' if result['under_target'] else 'OVER'} the {args.target_gib} GiB target.")
    with open(os.path.join(output_dir, "memory.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
