"""The static Space on the Hub (scripts/build_static_space.py): its README.md (the Spaces header and a model/data
card), the checks before a build that will be uploaded, and the upload.

The header says `sdk: static` (Hugging Face serves the folder as files; no server code, no hardware to pay
for). The card reuses fer_hf.hub.model_card's sections, so what the page's model was trained on and how well
it did are read from the training folder's files (config.json, class_counts.json, train_args.json,
all_results.json) and any scripts/evaluate.py output; what was not recorded is called that. The site itself is
fer_hf.export.static_site's (export does not import hub: the command hands `write_readme` to it).
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData

from ..models.run_folder import RunFolder
from ..utils.offline import require_hub
from . import model_card as mc
from .staging import require_token

PRIVACY = ("Everything runs in your browser: the photo (or webcam frame) is decoded, its faces found by YuNet and "
           "classified by the model on this device (in WebAssembly: the page's own kernels for YuNet and an int8 ViT, "
           "ONNX Runtime Web for other models). Nothing is uploaded; the page makes no request other than for its own "
           "files.")


def accuracy_lines(run: RunFolder | None, evals: dict[str, dict], export: dict) -> list[str]:
    """Measured figures only: end-of-training validation, scripts/evaluate.py runs, the ONNX export's checks."""
    lines = ["## Measured accuracy", ""]
    res = run.results if run else {}
    if "eval_accuracy" in res:
        lines.append(f"- End-of-training validation (all_results.json, {res.get('eval_samples', mc.NOT_RECORDED)} "
                     f"images): accuracy {mc._f(res['eval_accuracy'])}, macro-F1 {mc._f(res.get('eval_macro_f1'))}.")
    for name, m in evals.items():
        lines.append(f"- `{name}` (scripts/evaluate.py): split `{m.get('split')}` of "
                     f"{', '.join(f'`{d}`' for d in m.get('datasets', []))}, {m.get('n_images')} images: "
                     f"accuracy {mc._f(m.get('accuracy'))}, macro-F1 {mc._f(m.get('macro_f1'))}.")
    if export:
        lines.append(f"- ONNX export (scripts/export_onnx.py, {export.get('num_images')} {export.get('data')} faces): "
                     f"fp32 matches PyTorch to {export.get('fp32_max_abs_diff', float('nan')):.1e} in probability"
                     + (f"; int8 agrees with PyTorch on {100 * export['int8_agreement']:.1f}% of the predictions"
                        if "int8_agreement" in export else "") + ".")
    if len(lines) == 2:
        lines.append(f"{mc.NOT_RECORDED.capitalize()}: the model folder has no all_results.json and no evaluation "
                     "was passed (`--eval_dir`).")
    if run and run.synthetic_only:
        lines += ["", ("**This model was trained on drawn cartoon faces (fer_hf/data/synthetic.py) only**: it shows how the "
                  "demo works, and its emotions for real photographs mean little.")]
    return lines


def write_readme(site: Path, model: str, title: str, config: dict, export: dict, eval_dirs: list[str]) -> Path:
    """Write `site/README.md`; `model` is the folder (or .onnx file) the site was built from."""
    folder = model if os.path.isdir(model) else os.path.dirname(os.path.abspath(model))
    run = RunFolder.read(folder) if os.path.isfile(os.path.join(folder, "config.json")) else None
    sources = run.sources if run else []
    data = SpaceCardData(title=title, emoji="🙂", colorFrom="green", colorTo="blue", sdk="static",
                         app_file="index.html", pinned=False,
                         short_description="Faces and their emotions, found in your browser",
                         tags=["facial-expression-recognition", "onnx", "onnxruntime-web", "fer-hf"],
                         # cross-origin isolation: lets ONNX Runtime Web use threads (static Spaces send these)
                         custom_headers={"cross-origin-embedder-policy": "require-corp",
                                         "cross-origin-opener-policy": "same-origin",
                                         "cross-origin-resource-policy": "cross-origin"})
    det = config["detector"]
    body = [f"# {title}", "", PRIVACY, "",
            ("A static Space: the page, the models and ONNX Runtime Web are plain files, so any static host serves it "
            "and it never sleeps. Built by fer-hf's `scripts/build_static_space.py`."), "",
            "## How it works", "",
            f"1. Faces are found with YuNet (Wu et al., 2023; OpenCV Zoo, MIT licence) on the photo shrunk towards "
            f"{det['max_side']} px on its long side"
            + (f" (but never below {det['min_scale']:.2f}× its size, so that small faces stay findable)"
               if det.get("min_scale") else "")
            + f", score threshold {det['score_threshold']}, NMS {det['nms_threshold']}.",
            (f"2. Each face is cropped as the model's training faces were framed: a square of "
            f"{config['framing']['scale']:g}× the box's {'width' if config['framing']['basis'] == 'width' else 'larger side'}, "
            f"its centre {config['framing']['shift_y']:g} of that below the box's, "
            f"resized to {config['image_size']}×{config['image_size']} px (Pillow's bicubic, re-implemented in fer.js)"
            + (", turned grey (the model learnt from grey faces only)" if config.get("grayscale") else "")
            + f" and normalised with mean {config['mean']} and std {config['std']}."),
            f"3. `model.onnx` ({config['precision']}) gives seven scores per face (softmax"
            + (f", temperature {config['calibration_temperature']:.4f}" if config.get("calibration_temperature") else "")
            + "); all faces of a photo go through it as one batch.",
            "", ("The same photo gets the same faces and scores as `python scripts/predict.py --model model.onnx` "
            "(fer-hf's tests/test_static_space.py compares them: the pixels the model sees are bit-identical; the int8 "
            "weights have 7 bits, so x86 CPUs without VNNI do not saturate where the browser does not either)."), ""]
    if run:
        body += mc.model_section(run, None) + [""] + mc.data_section(run, sources, run.synthetic_only) + [""]
    else:
        body += ["## Model", "", (f"Built from the ONNX file `{os.path.basename(model)}` "
                 f"(architecture `{config.get('architecture')}`); its training folder was not available, so the "
                 f"training data is {mc.NOT_RECORDED}."), ""]
    body += accuracy_lines(run, {n: m for n, (_, m) in mc.read_evals(eval_dirs).items()}, export)
    body += ["", "## Labels", "", ", ".join(f"{i}: {label}" for i, label in enumerate(config["labels"])), "",
             "## Licences", "", ("YuNet: MIT (OpenCV Zoo). ONNX Runtime Web: MIT (Microsoft; `ort/` holds its CPU build's files "
             "this page needs). "
             "The model's use is "
             "bound by the licences of its training data (FER2013, FER+, RAF-DB and AffectNet are for research only).")]
    card = SpaceCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")
    path = site / "README.md"
    card.save(str(path))
    return path


def check_hub(repo_id: str) -> None:
    """Fail in seconds, before a build, when the Hub or a token is missing."""
    later = (f"Build without --push_to_hub and upload the folder later from a machine that reaches the Hub: "
             f"`hf upload {repo_id} SITE --repo-type space`.")
    require_hub(f"publishing the static Space {repo_id!r}", later)
    require_token(later)


def upload(site: Path, repo_id: str, private: bool) -> str:
    """The site folder as one commit to a static Space; the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=require_token(""))
    api.create_repo(repo_id, repo_type="space", space_sdk="static", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(site),
                             commit_message="Upload the fer-hf static Space")
    return info.commit_url
