"""Emotions of the faces in images: one JSON line per face.

    python scripts/predict.py photo.jpg photos/ [--model DIR] [--no-detect] [--tta flip]
        [--detector auto|yunet|haar] [--output preds.jsonl]

Without --model (or FER_MODEL), the best trained model folder under outputs/ is used (fer_hf.inference.model_info:
the FER+ recipe's, then FER2013's, then the quickstart's) and the log says which, what it was trained on
and its validation accuracy, with a warning if it only saw synthetic faces.

Directories are walked for image files. Each line holds the file, the face's box (x, y, w, h),
emotion, confidence and all seven scores. A photo in which no face is found gets one line with
`"faces": 0` and the whole-image prediction; a file that is not a readable image gets a line with
an `"error"` and the run goes on. Lines go to `--output` (JSON Lines) or stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import torch

from fer_hf.data.transforms import BadImageError
from fer_hf.inference.model_info import describe, model_facts, resolve_model
from fer_hf.inference.options import ServeOptions
from fer_hf.inference.recognizer import EmotionRecognizer, load_image

logger = logging.getLogger("fer_hf.predict")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jfif"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="image files and/or directories (walked recursively)")
    parser.add_argument("--model", default=None,
                        help="model folder, ONNX file or Hub id (default: $FER_MODEL, else the best folder under outputs/)")
    parser.add_argument("--detector", default=None, choices=["auto", "yunet", "haar"], help="default: $FER_DETECTOR, else auto")
    parser.add_argument("--yunet_model", default=None,
                        help="another YuNet ONNX file (default: FER_YUNET_PATH, else the copy shipped in fer_hf)")
    parser.add_argument("--no-detect", "--no_detect", dest="detect", action="store_false",
                        help="the images already are face crops: classify each whole image")
    parser.add_argument("--tta", choices=["flip"], default=None, help="average with the mirrored face")
    parser.add_argument("--align", action="store_true", help="rotate each face so the eyes are level (YuNet)")
    parser.add_argument("--output", default=None, help="JSON Lines file to write (default: stdout)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def image_files(inputs: list[str]) -> list[Path]:
    """Files named on the command line as given; directories walked for image suffixes, sorted."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(item).parts))
        else:
            files.append(item)  # a missing file gets its own error line
    return files


def predict_file(recognizer: EmotionRecognizer, file: Path, detect: bool) -> list[dict]:
    """The JSON records for one file (never raises for a bad image)."""
    try:
        image = load_image(file)
    except BadImageError as err:
        return [{"file": str(file), "error": str(err)}]
    faces = recognizer.recognize(image, detect=detect)
    if not faces:  # no face found: say so, and still give the whole-image prediction
        whole = recognizer.recognize(image, detect=False)[0]
        return [{"file": str(file), "faces": 0, "note": "no face detected; prediction for the whole image",
                 **whole.to_dict()}]
    return [{"file": str(file), "faces": len(faces), "face": i, **face.to_dict()} for i, face in enumerate(faces)]


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    torch.set_num_threads(args.threads)
    env = ServeOptions.from_environ(os.environ)  # FER_MODEL, FER_DETECTOR, FER_YUNET_PATH, ... (options.py)
    model = resolve_model(args.model or env.model, env.roots)
    recognizer = EmotionRecognizer.from_pretrained(model, detector=(args.detector or env.detector) if args.detect else None,
                                                   tta=args.tta, device=args.device, align=args.align,
                                                   yunet_model=args.yunet_model or env.yunet_model,
                                                   detection=env.detection)
    facts = model_facts(model, recognizer.backend)
    logger.info("Model: %s.", describe(facts))
    if facts["warning"]:
        logger.warning(facts["warning"])
    records = []
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    try:
        for file in image_files(args.inputs):
            for record in predict_file(recognizer, file, args.detect):
                records.append(record)
                out.write(json.dumps(record) + "\n")
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    errors = sum("error" in r for r in records)
    logger.info("%d line(s), %d unreadable file(s)%s", len(records), errors, f" -> {args.output}" if args.output else "")
    return records


if __name__ == "__main__":
    main()
