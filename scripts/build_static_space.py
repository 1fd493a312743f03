"""Build the static Space: the whole demo as a self-contained web site that runs in the browser.

    python scripts/build_static_space.py --model outputs/quickstart --output_dir site [--fp32]
    python scripts/build_static_space.py --model outputs/quickstart --output_dir site --push_to_hub USER/NAME
    python -m http.server -d site 8000        # then open http://127.0.0.1:8000

The site (about 7 MB with an int8 ViT, 21 MB with another int8 model) holds:
- the page (index.html, app.js, fer.js, pixels.js, yunet.js, kernels.wasm, style.css from static_space/); fer.js does fer_hf's own pre- and
  post-processing, so a photo gets the same faces and scores as `scripts/predict.py` with the same ONNX file;
- model.onnx: exported by scripts/export_onnx.py (int8 by default, --fp32 for the float graph; an
  existing .onnx export is copied as it is), and preprocessing.json: its labels, input size, mean, std,
  calibration temperature, and the detector and crop settings of fer_hf.faces;
- yunet.json + yunet.bin: the YuNet face detector (MIT) as a list of layers and their weights, run by the
  page's own WebAssembly kernels (kernels-relaxed.wasm, or kernels.wasm where the browser lacks relaxed SIMD; both
  built from static_space/pixels.c, yunet.c and vit.c);
- for an int8 ViT (scripts/vit_program.py): vit.json (the blocks and head, run by vit.c, their weights read from
  model.onnx) and stem.bin (the stem's steps' weights; or stem.onnx, the graph up to the first block, for
  onnxruntime-web where the stem is another); other models run whole in onnxruntime-web;
- ort/: ONNX Runtime Web's CPU (wasm) build, from the npm package pinned in static_space/package-lock.json,
  installed with `npm ci` into a cache folder once (no CDN at run time, nothing else copied; its .wasm only when
  the page runs a model, or a stem, in it);
- README.md: the Spaces header (`sdk: static`) and a model card (training data, measured accuracy).
`--push_to_hub` checks the Hub and a token before building, then uploads the folder as one commit.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone without install
sys.path.append(str(ROOT / "scripts"))  # export_onnx; appended: scripts/evaluate.py must not shadow `evaluate`

WEB = ROOT / "static_space"
WEB_FILES = ("index.html", "app.js", "fer.js", "pixels.js", "yunet.js", "vit.js", "kernels.wasm", "kernels-relaxed.wasm",
             "style.css")
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # the CPU build only
YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_OUTPUTS = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in (8, 16, 32)]
MAX_BYTES, MAX_PIXELS = 20 * 2**20, 40_000_000  # the Gradio Space's upload limits
SIZE_LIMIT_MB = 25


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a trained model folder, or an .onnx file from scripts/export_onnx.py")
    p.add_argument("--output_dir", required=True, help="the site folder to write")
    p.add_argument("--fp32", action="store_true", help="ship the fp32 graph instead of the int8 one (about 4x larger)")
    p.add_argument("--full_range", action="store_true", help="8-bit int8 weights: a little closer to the fp32 model, "
                   "but on AVX2 CPUs predict.py's scores then differ from the page's by up to ~0.01")
    p.add_argument("--yunet_model", default=None, help="the YuNet ONNX file (default: the package's, FER_YUNET_PATH, "
                   "the fer_hf cache, or ../shared/models/yunet)")
    p.add_argument("--ort_dist", default=None, help="an onnxruntime-web dist/ folder to copy from instead of `npm ci`")
    p.add_argument("--eval_dir", action="append", default=[], help="scripts/evaluate.py output folder(s) for the card")
    p.add_argument("--num_images", type=int, default=50, help="synthetic faces for the export's parity check")
    p.add_argument("--title", default="Facial expression recognition")
    p.add_argument("--overwrite", action="store_true", help="replace an output_dir this script built before")
    p.add_argument("--push_to_hub", default=None, metavar="USER/NAME", help="upload the site as this static Space")
    p.add_argument("--private", action="store_true")
    return p.parse_args(argv)


def yunet_source(path: str | None = None) -> Path:
    """The YuNet file: the argument, the package's own copy, fer_hf.faces' lookup (FER_YUNET_PATH, the
    verified cache; no download offline), else the shared test asset next to this repository."""
    if path:
        return Path(path)
    from fer_hf import faces

    packaged = sorted(Path(faces.__file__).parent.rglob(getattr(faces, "YUNET_FILE", YUNET_FILE)))
    if packaged:
        return packaged[0]
    try:
        return Path(faces.yunet_path())
    except (OSError, ValueError):
        shared = ROOT.parent / "shared" / "models" / "yunet" / YUNET_FILE
        if shared.is_file():
            return shared
        raise FileNotFoundError(f"no YuNet model found: pass --yunet_model or set FER_YUNET_PATH (tried {shared})")


def _default(fn, name: str, fallback):
    param = inspect.signature(fn).parameters.get(name)
    return fallback if param is None or param.default is inspect.Parameter.empty else param.default


def detection_settings(yunet: Path) -> dict:
    """How fer_hf detects, read from fer_hf itself (a YuNetDetector instance), so that the page keeps doing what scripts/predict.py does. fer.js applies them;
    tests/test_static_space.py compares the two on generated photos."""
    from fer_hf import faces

    det = faces.YuNetDetector(str(yunet))
    finds_px, min_face = getattr(det, "finds_px", None), getattr(det, "min_face", None)
    score = getattr(det, "score_threshold", _default(faces.YuNetDetector, "score_threshold", 0.6))
    return {"detector": {
                "score_threshold": float(score),
                "nms_threshold": float(getattr(det, "nms_threshold", _default(faces.YuNetDetector, "nms_threshold", 0.3))),
                "top_k": 5000,  # what YuNetDetector passes to cv2.FaceDetectorYN.create
                "max_side": int(det.max_side),  # FER_DETECT_MAX_SIDE is read here, at build time
                # the photo is not shrunk below the scale that keeps a `min_face` face at `finds_px` ...
                "min_scale": finds_px / min_face if finds_px and min_face else 0.0,
                # ... unless it would stay over this long side (faces.detection_scale)
                "max_detect_side": getattr(faces, "MAX_DETECT_SIDE", None)}}


def write_yunet_program(src: Path, site: Path) -> None:
    """YuNet for the page's own WebAssembly kernels (static_space/yunet.c, run by yunet.js): its layers in order as
    yunet.json (each Conv with the ReLU after it, MaxPool, nearest 2x Resize + Add; the Transpose/Reshape/Sigmoid
    tails as output rules) and their float32 weights as yunet.bin. Anything else in the graph is an error: the
    kernels cover the 2023mar float model, the one fer_hf ships."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    names = [o.name for o in graph.output]
    if graph.input[0].name != "input" or sorted(names) != sorted(YUNET_OUTPUTS):
        raise ValueError(f"{src} is not the YuNet 2023mar model (outputs {names}; expected {YUNET_OUTPUTS})")
    weights = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    blob, steps, outputs, done = [], [], {}, set()

    def store(array) -> int:  # offset, in floats, of `array` in yunet.bin
        blob.append(array.ravel())
        return sum(a.size for a in blob[:-1])

    def only_reader(name, op):
        nodes = readers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None

    for node in graph.node:
        if id(node) in done:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            b = weights[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            cout, cin_group, kh, kw = w.shape
            group, strides = attrs.get("group", 1), list(attrs.get("strides", [1, 1]))
            pads, out, relu = list(attrs.get("pads", [0, 0, 0, 0])), node.output[0], only_reader(node.output[0], "Relu")
            if relu:
                done.add(id(relu))
                out = relu.output[0]
            if (kh, kw, group, strides, relu) == (1, 1, 1, [1, 1], None):
                op = "conv1x1"
            elif (kh, kw, group, cin_group, strides, pads) == (3, 3, cout, 1, [1, 1], [1, 1, 1, 1]):
                op = "dw3x3"
            elif (kh, kw, group, strides, pads) == (3, 3, 1, [2, 2], [1, 1, 1, 1]) and relu:
                op = "conv3x3s2_relu"
            else:
                raise ValueError(f"{src}: Conv {node.name} ({w.shape}, group {group}, strides {strides}) has no kernel")
            steps.append({"op": op, "in": node.input[0], "out": out, "w": store(w), "b": store(b),
                          "cin": cin_group * group, "cout": cout, "relu": relu is not None})
        elif node.op_type == "MaxPool" and list(attrs["kernel_shape"]) == list(attrs["strides"]) == [2, 2]:
            steps.append({"op": "maxpool2", "in": node.input[0], "out": node.output[0]})
        elif node.op_type == "Resize" and attrs.get("mode") == b"nearest" and only_reader(node.output[0], "Add"):
            add = only_reader(node.output[0], "Add")  # YuNet's FPN: upsample 2x (floor) and add the finer map
            done.add(id(add))
            big = next(name for name in add.input if name != node.output[0])
            steps.append({"op": "upsample2_add", "small": node.input[0], "big": big, "out": add.output[0]})
        elif node.op_type == "Transpose" and list(attrs["perm"]) == [0, 2, 3, 1]:
            name, sigmoid = node.output[0], False  # NCHW -> NHWC, flattened; cls and obj through a sigmoid
            while (tail := only_reader(name, "Reshape") or only_reader(name, "Sigmoid")) is not None:
                done.add(id(tail))
                sigmoid |= tail.op_type == "Sigmoid"
                name = tail.output[0]
            outputs[name] = {"from": node.input[0], "sigmoid": sigmoid}
        else:
            raise ValueError(f"{src}: {node.op_type} node {node.name} has no kernel in static_space/yunet.c")
    if sorted(outputs) != sorted(YUNET_OUTPUTS):
        raise ValueError(f"{src}: outputs {sorted(outputs)} were not traced back to the network")
    program = {"source": src.name, "input": "input", "steps": steps, "outputs": outputs}
    (site / "yunet.json").write_text(json.dumps(program) + "\n")
    np.concatenate(blob).astype("<f4").tofile(site / "yunet.bin")


def ort_dist(given: str | None) -> Path:
    """onnxruntime-web's dist/ folder: given, or `npm ci` of static_space/'s lock file into the cache."""
    if given:
        dist = Path(given)
    else:
        lock = json.loads((WEB / "package-lock.json").read_text())
        version = lock["packages"]["node_modules/onnxruntime-web"]["version"]
        home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        base = Path(os.environ.get("FER_HF_CACHE") or home_cache / "fer_hf")  # as fer_hf.faces.cache_dir
        prefix = base / f"onnxruntime-web-{version}"
        dist = prefix / "node_modules" / "onnxruntime-web" / "dist"
        if not all((dist / f).is_file() for f in ORT_FILES):
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is needed once to fetch onnxruntime-web (apt-get install npm), or pass --ort_dist")
            prefix.mkdir(parents=True, exist_ok=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copy(WEB / name, prefix / name)
            print(f"installing onnxruntime-web {version} from the npm registry into {prefix}")
            run = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                                 cwd=prefix, capture_output=True, text=True)
            if run.returncode:
                raise RuntimeError(f"`npm ci` for onnxruntime-web {version} failed (is the npm registry reachable?):\n"
                                   f"{run.stderr.strip()[-2000:]}\nPass --ort_dist DIR with an unpacked dist/ instead.")
    missing = [f for f in ORT_FILES if not (dist / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{dist} lacks {missing}: expected onnxruntime-web's dist/ folder")
    return dist


def export_model(model: str, fp32: bool, num_images: int, work: Path, full_range: bool = False) -> tuple[Path, dict]:
    """(ONNX file, export results) through scripts/export_onnx.py; an .onnx file is taken as it is.

    int8 weights get 7 bits (`--reduce_range`) and per-channel scales: onnxruntime's x86 kernels without VNNI
    (AVX2) saturate int16 pair sums with 8-bit weights and the browser's wasm kernels do not, so only 7-bit
    weights give the page exactly the scores of scripts/predict.py (`--full_range`: 8 bits, scores within ~0.01)."""
    if model.endswith(".onnx"):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"ONNX model {model!r} does not exist")
        return Path(model), {}
    import export_onnx

    argv = ["--model", model, "--output", str(work / "model.onnx"), "--num_images", str(max(1, num_images))]
    int8 = ["--quantize", "int8", "--per_channel"] + ([] if full_range else ["--reduce_range"])
    result = export_onnx.main(argv + ([] if fp32 else int8))
    return Path(result["files"]["fp32" if fp32 else "int8"]), result


def onnx_metadata(path: Path) -> dict:
    """The inference settings scripts/export_onnx.py stores in the file (labels, size, mean, std, temperature)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if "fer_hf" not in props:
        raise ValueError(f"{path} has no 'fer_hf' metadata: export it with scripts/export_onnx.py")
    return json.loads(props["fer_hf"])


def is_quantized(path: Path) -> bool:
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    return bool(ops & {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv"})


def check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output_dir {str(out)!r} is a file; expected a folder for the site")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"--output_dir {str(out)!r} is not empty; pass --overwrite to replace a site built before")
        if not (out / "preprocessing.json").is_file():
            raise FileExistsError(f"--output_dir {str(out)!r} does not look like a site this script built; not replacing it")
        shutil.rmtree(out)


def build(args, site: Path, work: Path) -> tuple[str, dict]:
    """Write every file of the site into `site`; (the model's precision, the export's results)."""
    dist = ort_dist(args.ort_dist)
    onnx_path, export = export_model(args.model, args.fp32, args.num_images, work, args.full_range)
    meta = onnx_metadata(onnx_path)
    (site / "ort").mkdir(parents=True)
    shutil.copy(onnx_path, site / "model.onnx")
    for name in WEB_FILES:
        shutil.copy(WEB / name, site / name)
    yunet = yunet_source(args.yunet_model)
    write_yunet_program(yunet, site)
    for licence in sorted(yunet.parent.glob("LICENSE*yunet*"))[:1]:  # the package ships YuNet's MIT licence
        shutil.copy(licence, site / "LICENSE-yunet.txt")
    precision = "int8" if is_quantized(site / "model.onnx") else "fp32"
    from vit_program import write_vit_program

    not_vit = write_vit_program(site / "model.onnx", site, meta["image_size"])
    own_stem = not not_vit and (site / "stem.bin").is_file()
    print(f"classifier in the page: onnxruntime-web for all of it ({not_vit})" if not_vit else
          "classifier in the page: the page's own kernels for all of it (vit.json, stem.bin)" if own_stem else
          "classifier in the page: onnxruntime-web for the stem (stem.onnx), the page's own kernels for the blocks")
    # onnxruntime-web's 14 MB wasm only where it runs (the page imports its small JavaScript files in any case)
    ort_runs = bool(not_vit) or not own_stem
    for name in ORT_FILES if ort_runs else [f for f in ORT_FILES if not f.endswith(".wasm")]:
        shutil.copy(dist / name, site / "ort" / name)
    # the files this build's page runs, fetched while the scripts load
    files = (["ort/ort-wasm-simd-threaded.wasm"] if ort_runs else []) + ["model.onnx"] + \
        ([] if not_vit else ["vit.json", "stem.bin" if own_stem else "stem.onnx"])
    preloads = ('  <link rel="modulepreload" href="ort/ort-wasm-simd-threaded.mjs">\n' if ort_runs else "") + "".join(
        f'  <link rel="preload" href="{name}" as="fetch" crossorigin>\n' for name in files)
    index = site / "index.html"
    index.write_text(index.read_text().replace("  <!-- model preloads -->\n", preloads))
    from fer_hf.faces import framing_of

    config = {"labels": meta["labels"], "image_size": meta["image_size"], "mean": meta["mean"], "std": meta["std"],
              "calibration_temperature": meta.get("calibration_temperature"), "architecture": meta.get("architecture"),
              "framing": framing_of(meta).to_dict(),  # the model's own (ONNX metadata), as predict.py crops
              "model_file": "model.onnx", "precision": precision,
              "vit": None if not_vit else "vit.json",
              **detection_settings(yunet), "max_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS}
    (site / "preprocessing.json").write_text(json.dumps(config, indent=2) + "\n")
    from fer_hf.space_card import write_readme

    write_readme(site, args.model, args.title, config, export, args.eval_dir)
    return precision, export


def cnn_warning(model_dir: str) -> str | None:
    """A warning when the model is a CNN (no patch embedding): slow in wasm, measured."""
    cfg_path = Path(model_dir) / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    if not cfg or "img_size" in cfg.get("model_args", {}):
        return None
    return (f"WARNING: {cfg.get('architecture')} is a CNN: onnxruntime-web runs int8 convolutions slowly (the resnet18 "
            "teacher: 110-122 ms for a one-face photo against ~50 ms with the ViT student, README); build the site "
            "from a ViT for the browser and serve the CNN from the Gradio Space")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.push_to_hub:  # before the build: fail in seconds, not after it
        check_hub(args.push_to_hub)
    out = Path(args.output_dir)
    check_target(out, args.overwrite)
    with tempfile.TemporaryDirectory(prefix="fer_static_") as tmp:  # built aside, moved in whole: no half sites
        precision, export = build(args, Path(tmp) / "site", Path(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()  # empty (check_target)
        shutil.move(str(Path(tmp) / "site"), str(out))
    files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    total_mb = sum(files.values()) / 1e6
    result = {"output_dir": str(out), "files": files, "size_mb": round(total_mb, 2), "precision": precision,
              "under_size_limit": total_mb < SIZE_LIMIT_MB, "export": {k: v for k, v in export.items() if k != "files"}}
    print(f"static site in {out}: {len(files)} files, {total_mb:.1f} MB (limit {SIZE_LIMIT_MB} MB)")
    if total_mb >= SIZE_LIMIT_MB:
        print(f"WARNING: the site is over {SIZE_LIMIT_MB} MB; the int8 model (without --fp32) is about 4x smaller")
    for name, size in files.items():
        print(f"  {size / 1e6:8.3f} MB  {name}")
    warning = cnn_warning(args.model)
    if warning:
        print(warning)
        result["warning"] = warning
    if args.push_to_hub:
        result["commit_url"] = upload(out, args.push_to_hub, args.private)
    return result


def check_hub(repo_id: str) -> None:
    from fer_hf.hub import require_hub, require_token

    later = (f"Build without --push_to_hub and upload the folder later from a machine that reaches the Hub: "
             f"`hf upload {repo_id} SITE --repo-type space`.")
    require_hub(f"publishing the static Space {repo_id!r}", later)
    require_token(later)


def upload(site: Path, repo_id: str, private: bool) -> str:
    from huggingface_hub import HfApi

    from fer_hf.hub import require_token

    api = HfApi(token=require_token(""))
    api.create_repo(repo_id, repo_type="space", space_sdk="static", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(site),
                             commit_message="Upload the fer-hf static Space")
    print(f"uploaded: {info.commit_url}")
    return info.commit_url


if __name__ == "__main__":
    main()
