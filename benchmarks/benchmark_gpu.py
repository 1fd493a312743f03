"""GPU training figures: the full FerTrainer pipeline vs the bare model step, and where the time goes.

    python benchmarks/benchmark_gpu.py --output bench_gpu.json      # needs a CUDA GPU; ~2 minutes

For each precision (fp16, bf16, fp32) at 224 px, batch 256: img/s of the real pipeline (FER2013 parquet or
the synthetic source, lazy decode + augmentation in DataLoader workers, class-balanced sampler, CutMix,
logging, clipping) beside the bare step (same model and batch on tensors already on the GPU), the share of
each step spent waiting for data, and the DataLoader alone (decode + augmentation, no model) for the
worker count used. The CPU figures are `benchmarks/benchmark.py`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from benchmark import FER2013, bare_step, full_path

from fer_hf.data.sources import DataArguments, build_datasets
from fer_hf.data.transforms import FerCollator, FerTransform


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="bench_gpu.json")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="Measured steps (after warm-up).")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1), help="DataLoader workers.")
    p.add_argument("--precisions", nargs="+", default=["fp16", "bf16", "fp32"], choices=["fp16", "bf16", "fp32"])
    p.add_argument("--data", default=FER2013 if os.path.isdir(FER2013) else "synthetic")
    p.add_argument("--device", default="cuda", help="cuda (the point of this script) or cpu (a smoke run).")
    args = p.parse_args(argv)
    args.quick = False  # benchmark.py's model_args: the real ViT-Tiny
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device: this script measures the GPU path; CPU figures come from benchmarks/benchmark.py")
    return args


def loader_only(train, args) -> float:
    """img/s of the DataLoader alone (workers decoding and augmenting, collation), no model."""
    train.set_transform(FerTransform(args.size, train=True))
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                         collate_fn=FerCollator([0.5] * 3, [0.5] * 3, args.size), drop_last=True)
    batches = iter(loader)
    for _ in range(args.warmup):  # worker start-up
        next(batches)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(batches)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def main(argv=None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    train = build_datasets(DataArguments(datasets=[args.data], synthetic_per_class=400, max_eval_samples=10))["train"]
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    out = {"device": name, "torch": torch.__version__, "data": args.data, "image_size": args.size,
           "batch_size": args.batch_size, "workers": args.workers, "runs": {}}
    out["loader_only_img_s"] = loader_only(train, args)
    for precision in args.precisions:
        full = full_path(train, args.size, precision, args, device=args.device, workers=args.workers)
        bare = bare_step(args.size, precision, args, device=args.device)
        out["runs"][precision] = {"full": full, "bare": bare, "full_vs_bare": full["img_s"] / bare["img_s"]}
        print(f"{precision}: full {full['img_s']:.0f} img/s, bare {bare['img_s']:.0f} img/s, "
              f"ratio {full['img_s'] / bare['img_s']:.2f}, waiting for data {100 * full['data_share']:.0f}%", flush=True)
    out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
    with open(args.output, "w") as f:
        json.dump(out, f, indent=2)
    print(f"{name}, {args.size} px, batch {args.batch_size}, {args.workers} workers; "
          f"DataLoader alone {out['loader_only_img_s']:.0f} img/s")
    return out


if __name__ == "__main__":
    main()
