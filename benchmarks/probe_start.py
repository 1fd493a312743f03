"""Does a from-scratch network start learning, and how fast? A few-minute probe per learning rate and patch size.

    python benchmarks/probe_start.py --lrs 1e-4 3e-4 5e-4                       # can it memorise 256 faces?
    python benchmarks/probe_start.py --images 0 --steps 600 --lrs 5e-4 --patch_sizes 8 12 16 24 --eval_images 1000

Trains the FER2013 recipe's network (ViT-Tiny from scratch, scripts/configs/fer2013_cpu.yaml) with AdamW on a
fixed random sample of `--images` training faces (0: all of them; no augmentation) for `--steps` steps, once
per (rate, patch size), and prints the mean loss of the last `--window` steps (chance is ln 7 = 1.95, the
FER2013 class prior about 1.81), the seconds it took and, with `--eval_images N`, the accuracy on N faces of
the validation split (FER2013's PublicTest; always predicting "happiness" scores 25%). A ViT that cannot
leave the class prior within a few hundred steps stays there for epochs, which is what the first FER2013
recipe (8 px patches) did; docs/fer2013.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from fer_hf.data.sources import DataArguments, build_datasets
from fer_hf.data.transforms import FerCollator, FerTransform
from fer_hf.models.modeling import ModelArguments, build_model, preprocessing_config

FER2013 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "fer2013")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 2e-4, 3e-4])
    p.add_argument("--patch_sizes", type=int, nargs="+", default=[16])
    p.add_argument("--data", default=FER2013 if os.path.isdir(FER2013) else "synthetic")
    p.add_argument("--images", type=int, default=256, help="Training faces to draw from (0: all).")
    p.add_argument("--eval_images", type=int, default=0, help="Validation faces to score at the end (0: none).")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--window", type=int, default=20, help="Steps averaged for the reported loss.")
    p.add_argument("--image_size", type=int, default=48)
    p.add_argument("--model_args", default=None, help="Extra timm kwargs as JSON (e.g. average pooling).")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def tensors(split, n: int, pre: dict, args) -> dict:
    """`n` faces of `split` (0: all), decoded once into one (pixel_values, labels) batch, normalised per `pre`."""
    if n:
        split = split.shuffle(seed=args.seed).select(range(min(n, len(split))))
    split = split.with_format(None)
    transform, collate = FerTransform(args.image_size, train=False), FerCollator(pre["mean"], pre["std"], args.image_size)
    return collate([{"pixel_values": transform.one(v), "labels": label} for v, label in zip(split["image"], split["label"])])


def probe(train: dict, lr: float, patch_size: int, args, evaluate: dict | None = None) -> dict:
    """Per-step training losses of a fresh network (same seed, same batches for every setting) and its accuracy."""
    torch.manual_seed(args.seed)
    model = build_model(ModelArguments(init_from="none", image_size=args.image_size, patch_size=patch_size,
                                       drop_path_rate=0.0, model_args=args.model_args)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    x, y = train["pixel_values"], train["labels"]
    g, losses, start = torch.Generator().manual_seed(args.seed), [], time.perf_counter()
    for _ in range(args.steps):
        rows = torch.randint(0, len(y), (args.batch_size,), generator=g)
        loss = F.cross_entropy(model(pixel_values=x[rows]).logits, y[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out = {"loss": float(np.mean(losses[-args.window:])), "seconds": time.perf_counter() - start}
    if evaluate is not None:
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(pixel_values=b).logits.argmax(-1) for b in evaluate["pixel_values"].split(256)])
        out["accuracy"] = float((pred == evaluate["labels"]).float().mean())
    return out


def main(argv=None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    splits = build_datasets(DataArguments(datasets=[args.data], max_eval_samples=args.eval_images or 1), seed=args.seed)
    # mean/std as the probed network's config.json records them (a one-block copy: same timm pretrained_cfg)
    pre = preprocessing_config(build_model(ModelArguments(init_from="none", image_size=args.image_size,
                                                          model_args='{"depth": 1}')).config)
    train = tensors(splits["train"], args.images, pre, args)
    evaluate = tensors(splits["validation"], args.eval_images, pre, args) if args.eval_images else None
    out = {}
    for patch_size in args.patch_sizes:
        for lr in args.lrs:
            r = out[(lr, patch_size)] = probe(train, lr, patch_size, args, evaluate)
            tokens = (args.image_size // patch_size) ** 2
            acc = f", accuracy on {len(evaluate['labels'])} validation faces {r['accuracy']:.1%}" if evaluate else ""
            print(f"lr {lr:g}, patch {patch_size} ({tokens} tokens): mean loss of the last {args.window} of {args.steps} "
                  f"steps {r['loss']:.3f} ({r['seconds']:.0f} s){acc}", flush=True)
    return out


if __name__ == "__main__":
    main()
