"""Peak memory of a short training run: scripts/train.py in a child process (target: under 3 GiB on FER2013).

    python benchmarks/measure_memory.py [--dataset ../shared/data/fer2013] [--max_steps 200] [--threads 1]

Starts scripts/train.py as a subprocess on a prepared dataset, with a small model (ViT-Tiny width, 48 px,
patch 8, 6 blocks by default; `--threads` torch threads through OMP_NUM_THREADS), and reports the child's peak
resident set size two ways: `getrusage(RUSAGE_CHILDREN).ru_maxrss` once it has exited (the kernel's peak of the
largest child: the training process, or one of its dataloader workers), and the highest `VmRSS` (and last
`VmHWM`) a background thread read from /proc/<pid>/status while it ran, with the time it happened, to tell
start-up from training. This process imports neither torch nor fer_hf, so what it measures is training alone.
Images stay as encoded bytes in the memory-mapped Arrow cache and are decoded lazily per batch, so the peak
should not grow with the dataset's size. Writes `memory.json` into `--output_dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TRAIN = os.path.join(ROOT, "scripts", "train.py")
GIB = 1024 ** 3
DEFAULT_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "fer2013"))


def proc_status_bytes(pid: int | str, field: str) -> int | None:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM) in bytes; None where the process or /proc is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Polls a process's VmRSS every `interval` seconds; keeps the maximum, when it was reached, and the last
    VmHWM read (the kernel's own peak, up to the last poll before the process exited)."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval, self.start_time = pid, interval, time.monotonic()
        self.peak, self.peak_at, self.hwm, self.samples = 0, 0.0, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = proc_status_bytes(self.pid, "VmRSS") or 0
            self.hwm = max(self.hwm, proc_status_bytes(self.pid, "VmHWM") or 0)
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
    # the quickstart recipe's settings, but a ViT (the recipe itself trains resnet10t, which has no patches)
    return [os.path.join(ROOT, "scripts", "configs", "quickstart.yaml"), "--datasets", args.dataset,
            "--architecture", "vit_tiny_patch16_224",
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
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="fer_memory_")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))  # torch's thread count in the child
    before = maxrss_bytes(resource.RUSAGE_CHILDREN)  # children of earlier calls (a test, a notebook) count too
    start = time.monotonic()
    child = subprocess.Popen([sys.executable, TRAIN, *train_argv(args, output_dir, extra)], env=env)
    sampler = RssSampler(child.pid)
    sampler.start()
    try:
        code = child.wait()
    finally:
        sampler.stop()
    if code:
        raise SystemExit(f"scripts/train.py exited with code {code}")
    with open(os.path.join(output_dir, "all_results.json")) as f:
        metrics = json.load(f)
    children = maxrss_bytes(resource.RUSAGE_CHILDREN)
    result = {
        "dataset": args.dataset, "max_steps": args.max_steps, "batch_size": args.batch_size,
        "image_size": args.image_size, "patch_size": args.patch_size, "depth": args.depth, "threads": args.threads,
        "train_samples": metrics.get("train_samples"), "skipped_images": metrics.get("skipped_images"),
        "wall_s": round(time.monotonic() - start, 1),
        # the kernel's peak of the largest child so far: this run's, unless an earlier child peaked higher
        "peak_rss_gib": round(children / GIB, 3), "peak_rss_is_this_run": children > before,
        "vm_hwm_gib": round(sampler.hwm / GIB, 3),
        "sampled_peak_rss_gib": round(sampler.peak / GIB, 3), "sampled_peak_at_s": round(sampler.peak_at, 1),
        "target_gib": args.target_gib,
    }
    result["under_target"] = max(result["peak_rss_gib"], result["vm_hwm_gib"]) < args.target_gib
    print(f"\nPeak RSS {result['peak_rss_gib']} GiB (ru_maxrss of the training process; VmHWM {result['vm_hwm_gib']} "
          f"GiB, sampled {result['sampled_peak_rss_gib']} GiB at {result['sampled_peak_at_s']} s) over "
          f"{args.max_steps} steps of batch {args.batch_size}: "
          f"{'under' if result['under_target'] else 'OVER'} the {args.target_gib} GiB target.")
    with open(os.path.join(output_dir, "memory.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
