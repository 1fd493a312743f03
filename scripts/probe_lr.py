"""Can a from-scratch network start learning at a given learning rate? A two-minute probe per rate.

    python scripts/probe_lr.py --lrs 1e-4 2e-4 3e-4 [--model_args '{"global_pool": "avg", "class_token": false}']

Trains the FER2013 recipe's network (scripts/configs/fer2013_cpu.yaml: ViT-Tiny, 48 px, patch 8) with AdamW
on a fixed random sample of `--images` training faces (no augmentation) for `--steps` steps, and prints the
mean loss of the last `--window` steps for each rate (chance is ln 7 = 1.95; the class prior about 1.81).
A rate at which a ViT cannot even begin to memorise a few hundred faces leaves it at the class prior for
epochs on the whole set, which is what the recipe's 1e-3 and 5e-4 did (README, FER2013 ablation).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone without install

import numpy as np
import torch
import torch.nn.functional as F

from fer_hf.data import DataArguments, build_datasets
from fer_hf.modeling import ModelArguments, build_model, preprocessing_config
from fer_hf.transforms import FerCollator, FerTransform

FER2013 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "fer2013")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 2e-4, 3e-4])
    p.add_argument("--data", default=FER2013 if os.path.isdir(FER2013) else "synthetic")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--window", type=int, default=20, help="Steps averaged for the reported loss.")
    p.add_argument("--image_size", type=int, default=48)
    p.add_argument("--patch_size", type=int, default=8)
    p.add_argument("--model_args", default=None, help="Extra timm kwargs as JSON (e.g. average pooling).")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def probe(x: torch.Tensor, y: torch.Tensor, lr: float, args) -> list[float]:
    """Per-step training losses of a fresh network at `lr` (same seed, same batches for every rate)."""
    torch.manual_seed(args.seed)
    model = build_model(ModelArguments(init_from="none", image_size=args.image_size, patch_size=args.patch_size,
                                       drop_path_rate=0.0, model_args=args.model_args)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    g, losses = torch.Generator().manual_seed(args.seed), []
    for _ in range(args.steps):
        rows = torch.randint(0, len(y), (args.batch_size,), generator=g)
        loss = F.cross_entropy(model(pixel_values=x[rows]).logits, y[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main(argv=None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    train = build_datasets(DataArguments(datasets=[args.data], max_eval_samples=1), seed=args.seed)["train"]
    train = train.shuffle(seed=args.seed).select(range(min(args.images, len(train)))).with_format(None)
    pre = preprocessing_config(build_model(ModelArguments(init_from="none", image_size=args.image_size,
                                                          patch_size=args.patch_size)).config)
    transform, collate = FerTransform(args.image_size, train=False), FerCollator(pre["mean"], pre["std"], args.image_size)
    batch = collate([{"pixel_values": transform.one(v), "labels": label} for v, label in zip(train["image"], train["label"])])
    out = {}
    for lr in args.lrs:
        losses = probe(batch["pixel_values"], batch["labels"], lr, args)
        out[lr] = float(np.mean(losses[-args.window:]))
        print(f"lr {lr:g}: mean loss of the last {args.window} of {args.steps} steps {out[lr]:.3f}", flush=True)
    return out


if __name__ == "__main__":
    main()
