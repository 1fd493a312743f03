"""The served path (photo in: detect, frame, crop, classify) against the same model on the pre-cropped faces.

    python benchmarks/served_vs_cropped.py --model outputs/ferplus_teacher_cpu \
        --data ../shared/data/crossdomain_dev/sfew --pad 0.5 --framings served margin0.2 margin0.0

Each labelled face image is scored twice with `EmotionRecognizer`: as a crop (`detect=False`, what evaluate.py
sees) and as a photo (`recognize`: YuNet finds the face, the crop is framed, the largest face is classified). A
tight face image gives the detector little to find, so `--pad` puts it on a larger canvas first (edge pixels
replicated, `--pad` of the face's side on each side) and `--upscale` enlarges small faces (CK+'s 48 px) the way a
camera photo would hold them. A photo where no face is found counts as wrong, and is counted; `with_fallback` is the
accuracy of what predict.py prints instead, where it finds no face: its prediction for the whole photo. Prints
accuracy per framing and writes `--output` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from tqdm.auto import tqdm

FRAMINGS = {"served": None, "margin0.0": 0.0, "margin0.1": 0.1, "margin0.2": 0.2}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", default="../shared/data/crossdomain_dev/sfew", help="An imagefolder of labelled faces.")
    p.add_argument("--split", default="train")
    p.add_argument("--pad", type=float, default=0.5)
    p.add_argument("--upscale", type=int, default=1)
    p.add_argument("--framings", nargs="+", default=list(FRAMINGS), choices=list(FRAMINGS))
    p.add_argument("--max_images", type=int, default=None)
    p.add_argument("--output", default=None)
    return p.parse_args(argv)


def as_photo(img, pad: float, upscale: int):
    import cv2
    from PIL import Image

    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.BICUBIC)
    b = round(max(img.size) * pad)
    return Image.fromarray(cv2.copyMakeBorder(np.asarray(img), b, b, b, b, cv2.BORDER_REPLICATE))


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    from fer_hf.data.labels import CLASSES
    from fer_hf.data.transforms import open_image
    from fer_hf.evaluation.suite import load_set
    from fer_hf.inference.recognizer import EmotionRecognizer

    torch.set_num_threads(1)
    data = load_set(args.data, args.split).with_format(None)
    rows = range(len(data)) if args.max_images is None else range(min(args.max_images, len(data)))
    recognizers = {name: EmotionRecognizer.from_pretrained(args.model, detector="yunet", margin=FRAMINGS[name])
                   for name in args.framings}
    cropped, served, missed = [], {n: [] for n in recognizers}, {n: 0 for n in recognizers}
    fallback = {n: [] for n in recognizers}  # predict.py's answer where no face is found: the whole photo
    first = next(iter(recognizers.values()))
    for i in tqdm(rows, desc="faces", unit="face"):
        img, label = open_image(data[i]["image"]), CLASSES[data[i]["label"]]
        cropped.append(first.recognize(img, detect=False)[0].emotion == label)
        photo = as_photo(img, args.pad, args.upscale)
        for name, rec in recognizers.items():
            faces = rec.recognize(photo)
            missed[name] += not faces
            served[name].append(bool(faces) and faces[0].emotion == label)
            fallback[name].append((faces or rec.recognize(photo, detect=False))[0].emotion == label)
    result = {"model": args.model, "data": args.data, "pad": args.pad, "upscale": args.upscale, "images": len(cropped),
              "cropped_accuracy": float(np.mean(cropped)),
              "served": {n: {"accuracy": float(np.mean(v)), "no_face": missed[n],
                             "with_fallback": float(np.mean(fallback[n])),
                             "framing": recognizers[n].framing.to_dict()} for n, v in served.items()}}
    print(f"{args.data}: {len(cropped)} faces, pre-cropped {result['cropped_accuracy']:.4f}")
    for name, r in result["served"].items():
        print(f"  served, {name:<10} {r['accuracy']:.4f} ({r['no_face']} without a face found; "
              f"{r['with_fallback']:.4f} with predict.py's whole-photo answer there)")
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
