"""Where FER2013's face crops sit relative to YuNet's face boxes: the framing the served crop should copy.

    python benchmarks/measure_framing.py --data ../shared/data/ferplus --fit_split train --check_split validation

FER2013's 48x48 faces were cropped by their own detector. Each face is upsampled (`--upsample`, bicubic) and
placed on a larger canvas (edge pixels replicated, so no new edges appear), YuNet is run on it, and the largest
box is expressed in units of the face crop: its centre (cx, cy) and size (w, h). The medians over `--fit_split`
give a framing (`fer_hf.inference.faces.Framing`) per basis (the box's width, or its larger side): the crop's side as a
multiple of it and the crop centre's offset from the box centre; the basis whose framing overlaps the true
crops of `--fit_split` best is kept. `--check_split` then crops every face it finds again with that framing
and with the old square-with-margin, and reports how far each lands from the true crop (intersection over
union): the framing should reproduce the training crop on faces it was not fitted on.
Writes `--output` (JSON) with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from tqdm.auto import tqdm


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/ferplus")
    p.add_argument("--fit_split", default="train")
    p.add_argument("--check_split", default="validation")
    p.add_argument("--max_images", type=int, default=3000, help="Faces per split (a seeded sample).")
    p.add_argument("--upsample", type=int, default=4, help="48 px faces are detected at 48 * this.")
    p.add_argument("--pad", type=float, default=0.5, help="Canvas border on each side, as a share of the face.")
    p.add_argument("--output", default="results/framing.json")
    return p.parse_args(argv)


def boxes(dataset, detector, upsample: int, pad: float, n: int, seed: int = 0) -> np.ndarray:
    """(k, 4) rows of (cx, cy, w, h) of YuNet's largest box in crop units, for the faces where it finds one."""
    import cv2
    from PIL import Image

    from fer_hf.data.transforms import open_image

    rows = np.random.default_rng(seed).permutation(len(dataset))[:n]
    raw = dataset.with_format(None)
    out = []
    for i in tqdm(rows.tolist(), desc="detecting", unit="face"):
        img = open_image(raw[i]["image"])
        side = img.width * upsample
        big = np.asarray(img.resize((side, side), Image.BICUBIC))
        b = round(side * pad)
        canvas = cv2.copyMakeBorder(big, b, b, b, b, cv2.BORDER_REPLICATE)
        found = detector.detect(canvas)
        if found:
            x, y, w, h = found[0].box
            out.append(((x - b + w / 2) / side, (y - b + h / 2) / side, w / side, h / side))
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def iou(a, b) -> float:
    (l0, t0, r0, b0), (l1, t1, r1, b1) = a, b
    inter = max(0.0, min(r0, r1) - max(l0, l1)) * max(0.0, min(b0, b1) - max(t0, t1))
    return inter / ((r0 - l0) * (b0 - t0) + (r1 - l1) * (b1 - t1) - inter)


def fit_framing(found: np.ndarray, basis: str):
    """The median framing of the true crops around the boxes, measured in the box's `basis` side."""
    from fer_hf.inference.faces import Framing

    side = found[:, 2] if basis == "width" else found[:, 2:].max(axis=1)
    return Framing(scale=round(float(np.median(1 / side)), 3), shift_x=round(float(np.median((0.5 - found[:, 0]) / side)), 3),
                   shift_y=round(float(np.median((0.5 - found[:, 1]) / side)), 3), basis=basis)


def check(found: np.ndarray, framings: dict) -> dict:
    """Median and 10th-percentile IoU of each framing's crop with the true crop (the unit square)."""
    from fer_hf.inference.faces import crop_box

    out = {}
    for name, framing in framings.items():
        scores = []
        for cx, cy, w, h in found:
            # in crop units x 1000: crop_box works on integer pixels of an unclipped, large image
            k = 1000
            box = ((cx - w / 2) * k + 10 * k, (cy - h / 2) * k + 10 * k, w * k, h * k)
            left, top, right, bottom = crop_box(box, (30 * k, 30 * k), framing=framing)
            scores.append(iou((left / k - 10, top / k - 10, right / k - 10, bottom / k - 10), (0, 0, 1, 1)))
        out[name] = {"mean_iou": float(np.mean(scores)), "median_iou": float(np.median(scores)),
                     "p10_iou": float(np.percentile(scores, 10))}
    return out


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import os

    from fer_hf.data.sources import load_sources
    from fer_hf.inference.faces import Framing, YuNetDetector

    (_name, dd), = load_sources([args.data]).items()
    detector = YuNetDetector(score_threshold=0.5, max_side=4096)
    fit = boxes(dd[args.fit_split], detector, args.upsample, args.pad, args.max_images)
    cx, cy, w, h = np.median(fit, axis=0)
    fitted = {basis: fit_framing(fit, basis) for basis in ("width", "max")}
    on_fit = check(fit, fitted)
    framing = fitted[max(on_fit, key=lambda b: on_fit[b]["mean_iou"])]
    held = boxes(dd[args.check_split], detector, args.upsample, args.pad, args.max_images, seed=1)
    candidates = {f"fitted ({b})": f for b, f in fitted.items()}
    candidates.update({f"margin {m}": Framing.from_margin(m) for m in (0.0, 0.1, 0.2)})
    result = {
        "data": args.data, "fit_split": args.fit_split, "check_split": args.check_split,
        "found": {args.fit_split: [len(fit), min(args.max_images, len(dd[args.fit_split]))],
                  args.check_split: [len(held), min(args.max_images, len(dd[args.check_split]))]},
        "box_in_crop_units": {"cx": cx, "cy": cy, "w": w, "h": h,
                              "iqr_w": float(np.subtract(*np.percentile(fit[:, 2], [75, 25]))),
                              "iqr_h": float(np.subtract(*np.percentile(fit[:, 3], [75, 25])))},
        "framing": framing.to_dict(),
        "iou_on_fit_split": on_fit,
        "iou_on_check_split": check(held, candidates),
    }
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
