"""The static Space: the whole demo as a self-contained web site that runs in the browser.

scripts/build_static_space.py is the command; `make_site(SiteOptions(model=...), output_dir)` builds a site
(about 7 MB with an int8 ViT, 21 MB with another int8 model) holding:
- the page (index.html, app.js, fer.js, pixels.js, yunet.js, vit.js, kernels*.wasm, style.css from the
  repository's static_space/); fer.js does fer_hf's own pre- and post-processing, so a photo gets the same faces
  and scores as `scripts/predict.py` with the same ONNX file;
- model.onnx: exported by fer_hf.export.onnx (int8 by default, fp32 on request; an existing .onnx export is copied
  as it is), and preprocessing.json: the file's PipelineConfig (labels, input size, mean, std, calibration
  temperature, framing, detection settings, upload limits) plus what the page needs besides;
- yunet.json + yunet.bin: the YuNet face detector (MIT) for the page's own WebAssembly kernels (yunet_program);
- for an int8 ViT: vit.json and stem.bin, or stem.onnx (vit_program, vit_stem); other models run whole in
  onnxruntime-web;
- ort/: ONNX Runtime Web's CPU (wasm) build, from the npm package pinned in static_space/package-lock.json,
  installed with `npm ci` into a cache folder once (no CDN at run time; its .wasm only when the page runs a model,
  or a stem, in it);
- README.md: the Spaces header (`sdk: static`) and a model card, written by the `write_card` the command passes
  (fer_hf.hub.space_card, which also checks the Hub and uploads: this room does not import hub).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..inference.faces import YUNET_FILE, YuNetDetector, cache_dir, yunet_path
from ..inference.onnx_backend import read_metadata
from ..inference.pipeline import PipelineConfig
from .vit_program import write_vit_program
from .yunet_program import write_yunet_program

ROOT = Path(__file__).resolve().parents[2]  # the repository: the page's files are not part of the package
WEB = ROOT / "static_space"
WEB_FILES = ("index.html", "app.js", "fer.js", "pixels.js", "yunet.js", "vit.js", "kernels.wasm",
             "kernels-relaxed.wasm", "style.css")
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # the CPU build only
QUANTIZED_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv"}
SIZE_LIMIT_MB = 25


@dataclass
class SiteOptions:
    """What to build a site from. `model`: a trained model folder or an .onnx export."""

    model: str
    fp32: bool = False  # ship the float graph (about 4x larger) instead of the int8 one
    full_range: bool = False  # 8-bit int8 weights: closer to fp32, but AVX2 CPUs then differ from the page
    yunet_model: str | None = None
    ort_dist: str | None = None  # an onnxruntime-web dist/ folder instead of `npm ci`
    num_images: int = 50  # synthetic faces for the export's parity check
    detect_max_side: int | None = None  # replaces the model's detection size (FER_DETECT_MAX_SIDE)


def yunet_source(path: str | None = None) -> Path:
    """The YuNet file: the argument, fer_hf.inference.faces' lookup (FER_YUNET_PATH, the package's copy, the
    verified cache; no download), else the shared test asset next to this repository."""
    if path:
        return Path(path)
    try:
        return Path(yunet_path())
    except (OSError, ValueError):
        shared = ROOT.parent / "shared" / "models" / "yunet" / YUNET_FILE
        if shared.is_file():
            return shared
        raise FileNotFoundError(f"no YuNet model found: pass --yunet_model or set FER_YUNET_PATH (tried {shared})")


def ort_dist(given: str | None) -> Path:
    """onnxruntime-web's dist/ folder: given, or `npm ci` of static_space/'s lock file into the cache."""
    if given:
        dist = Path(given)
    else:
        lock = json.loads((WEB / "package-lock.json").read_text())
        version = lock["packages"]["node_modules/onnxruntime-web"]["version"]
        prefix = cache_dir() / f"onnxruntime-web-{version}"
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
                                 cwd=prefix, capture_output=True, text=True, check=False)
            if run.returncode:
                raise RuntimeError(f"`npm ci` for onnxruntime-web {version} failed (is the npm registry reachable?):\n"
                                   f"{run.stderr.strip()[-2000:]}\nPass --ort_dist DIR with an unpacked dist/ instead.")
    missing = [f for f in ORT_FILES if not (dist / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{dist} lacks {missing}: expected onnxruntime-web's dist/ folder")
    return dist


def export_model(model: str, fp32: bool, num_images: int, work: Path, full_range: bool = False) -> tuple[Path, dict]:
    """(ONNX file, export results) through fer_hf.export.onnx; an .onnx file is taken as it is.

    int8 weights get 7 bits (`reduce_range`) and per-channel scales: onnxruntime's x86 kernels without VNNI
    (AVX2) saturate int16 pair sums with 8-bit weights and the browser's wasm kernels do not, so only 7-bit
    weights give the page exactly the scores of scripts/predict.py (`full_range`: 8 bits, scores within ~0.01)."""
    if model.endswith(".onnx"):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"ONNX model {model!r} does not exist")
        return Path(model), {}
    from .onnx import export_and_check, require_parity  # torch: only when there is a model to export

    result = export_and_check(model, str(work / "model.onnx"), quantize=None if fp32 else "int8",
                              reduce_range=not fp32 and not full_range, per_channel=not fp32,
                              num_images=max(1, num_images))
    require_parity(result)
    return Path(result["files"]["fp32" if fp32 else "int8"]), result


def is_quantized(path: Path) -> bool:
    import onnx

    return bool({n.op_type for n in onnx.load(str(path)).graph.node} & QUANTIZED_OPS)


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse a file, a folder with other contents, or (without `overwrite`) a site built before."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output_dir {str(out)!r} is a file; expected a folder for the site")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"--output_dir {str(out)!r} is not empty; pass --overwrite to replace a site built before")
        if not (out / "preprocessing.json").is_file():
            raise FileExistsError(f"--output_dir {str(out)!r} does not look like a site this script built; not replacing it")
        shutil.rmtree(out)


def page_config(pipeline: PipelineConfig, architecture: str | None, precision: str, vit: bool) -> dict:
    """preprocessing.json: the ONNX file's PipelineConfig, as predict.py runs it, and what the page needs besides.
    fer.js applies it; tests/test_static_space.py compares the page with predict.py on generated photos."""
    detector = pipeline.detector
    # the photo is not shrunk below the scale that keeps a `min_face` face at the size YuNet still finds
    # (faces.detection_scale), which fer.js applies as a number
    min_scale = YuNetDetector.finds_px / detector.min_face
    return {**pipeline.to_dict(), "detector": {**asdict(detector), "min_scale": min_scale},
            "architecture": architecture, "model_file": "model.onnx", "precision": precision,
            "vit": "vit.json" if vit else None}


# (site, preprocessing.json's content, the export's results) -> writes site/README.md
CardWriter = Callable[[Path, dict, dict], object]


def build(options: SiteOptions, site: Path, work: Path, write_card: CardWriter | None = None) -> dict:
    """Write every file of the site into `site`, the card through `write_card` (fer_hf.hub.space_card: a room
    above this one, so the command passes it in); {precision, export (its results), classifier (where it runs)}."""
    dist = ort_dist(options.ort_dist)
    onnx_path, export = export_model(options.model, options.fp32, options.num_images, work, options.full_range)
    meta = read_metadata(str(onnx_path))
    pipeline = PipelineConfig.from_dict(meta).with_detector(max_side=options.detect_max_side)
    (site / "ort").mkdir(parents=True)
    shutil.copy(onnx_path, site / "model.onnx")
    for name in WEB_FILES:
        shutil.copy(WEB / name, site / name)
    yunet = yunet_source(options.yunet_model)
    write_yunet_program(yunet, site)
    for licence in sorted(yunet.parent.glob("LICENSE*yunet*"))[:1]:  # the package ships YuNet's MIT licence
        shutil.copy(licence, site / "LICENSE-yunet.txt")
    precision = "int8" if is_quantized(site / "model.onnx") else "fp32"
    not_vit = write_vit_program(site / "model.onnx", site, pipeline.image_size)
    own_stem = not not_vit and (site / "stem.bin").is_file()
    classifier = (f"onnxruntime-web for all of it ({not_vit})" if not_vit else
                  "the page's own kernels for all of it (vit.json, stem.bin)" if own_stem else
                  "onnxruntime-web for the stem (stem.onnx), the page's own kernels for the blocks")
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
    config = page_config(pipeline, meta.get("architecture"), precision, vit=not not_vit)
    (site / "preprocessing.json").write_text(json.dumps(config, indent=2) + "\n")
    if write_card is not None:
        write_card(site, config, export)
    return {"precision": precision, "export": export, "classifier": classifier}


def make_site(options: SiteOptions, output_dir: str | os.PathLike, overwrite: bool = False,
              write_card: CardWriter | None = None) -> dict:
    """Build the site aside and move it into `output_dir` whole (no half sites); the files, sizes and notes."""
    out = Path(output_dir)
    check_target(out, overwrite)
    with tempfile.TemporaryDirectory(prefix="fer_static_") as tmp:
        built = build(options, Path(tmp) / "site", Path(tmp), write_card)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()  # empty (check_target)
        shutil.move(str(Path(tmp) / "site"), str(out))
    files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    total_mb = sum(files.values()) / 1e6
    result = {"output_dir": str(out), "files": files, "size_mb": round(total_mb, 2), "precision": built["precision"],
              "under_size_limit": total_mb < SIZE_LIMIT_MB, "classifier": built["classifier"],
              "export": {k: v for k, v in built["export"].items() if k != "files"}}
    warning = cnn_warning(options.model)
    if warning:
        result["warning"] = warning
    return result


def cnn_warning(model_dir: str) -> str | None:
    """A warning when the model is a CNN (no patch embedding): slow in wasm, measured."""
    cfg_path = Path(model_dir) / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    if not cfg or "img_size" in cfg.get("model_args", {}):
        return None
    return (f"WARNING: {cfg.get('architecture')} is a CNN: onnxruntime-web runs int8 convolutions slowly (the resnet18 "
            "teacher: 110-122 ms for a one-face photo against ~50 ms with the ViT student, docs/static_space.md); build the site "
            "from a ViT for the browser and serve the CNN from the Gradio Space")
