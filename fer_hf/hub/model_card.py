"""The model card (README.md) of a published model, built from the files of its training and evaluation runs.

Every figure in the card is read from a file: the training run's config.json, class_counts.json,
trainer_state.json, all_results.json and its arguments (`train_args.json` when the run wrote one,
else the `args` text that transformers' TensorBoard callback logs), and each evaluation folder's
metrics.json (scripts/evaluate.py). What was not recorded is called that; nothing is estimated.
The headline metrics also go into the card's metadata (`model-index`), so the Hub shows them.
"""

from __future__ import annotations

import json
import logging
import os
import re

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.labels import CLASSES
from ..evaluation.suite import SUITE
from ..models.run_folder import RunFolder

logger = logging.getLogger(__name__)

# = fer_hf.models.modeling.TEMPERATURE_KEY (a test checks it), not imported: that module loads torch, timm and
# transformers, ~10 s on a busy 2-core machine, for one string.
TEMPERATURE_KEY = "calibration_temperature"

NOT_RECORDED = "not recorded"
TASK = "image-classification"


def _hub_id(spec: str) -> str | None:
    """`spec` if it names a Hub repo (org/name, not a local path), else None."""
    local = spec.startswith((".", "/", "~")) or os.path.exists(os.path.expanduser(spec))
    return spec if spec.count("/") == 1 and not local else None


def _dataset_ids(specs: list[str]) -> tuple[str, str]:
    """(type, name) for card metadata: Hub ids where the specs are Hub datasets, else folder names."""
    names = [_hub_id(s) or os.path.basename(os.path.normpath(s)) for s in specs]
    return "+".join(names), " + ".join(names)


def eval_results(evals: dict[str, dict]) -> list[EvalResult]:
    """Accuracy and macro-F1 (single view: what `pipeline` gives) of each evaluation, as card metadata.

    The Hub keys results by (task, dataset, split): a second evaluation of the same split (another
    temperature, say) stays in the card's text only, so the metadata never holds two values for one key.
    """
    out, seen = [], set()
    for m in evals.values():
        dataset_type, dataset_name = _dataset_ids(m["datasets"])
        if (dataset_type, m["split"]) in seen:
            continue
        seen.add((dataset_type, m["split"]))
        for metric_type, key, label, margs in (("accuracy", "accuracy", "Accuracy", None),
                                               ("f1", "macro_f1", "Macro F1", {"average": "macro"})):
            out.append(EvalResult(task_type=TASK, task_name="Facial expression recognition",
                                  dataset_type=dataset_type, dataset_name=dataset_name, dataset_split=m["split"],
                                  metric_type=metric_type, metric_name=label, metric_value=round(float(m[key]), 4),
                                  metric_args=margs))
    return out


def suite_results(results: dict) -> dict[str, dict]:
    """`{set: {accuracy, macro_f1, recall: {class: r}}}` from all_results.json's `suite_<set>_*` entries (train.py
    with `report_sets`: FER+ validation and the cross-domain dev sets, fer_hf.evaluation.suite)."""
    out = {}
    for name in SUITE:
        if f"suite_{name}_accuracy" in results:
            out[name] = {"accuracy": results[f"suite_{name}_accuracy"], "macro_f1": results[f"suite_{name}_macro_f1"],
                         "recall": {c: results[f"suite_{name}_recall_{c}"] for c in CLASSES
                                    if f"suite_{name}_recall_{c}" in results}}
    return out


def suite_eval_results(results: dict) -> list[EvalResult]:
    """The suite's accuracy and macro-F1 per set as card metadata (a set is its own dataset)."""
    out = []
    for name, m in suite_results(results).items():
        folder, split = SUITE[name]
        for metric_type, key, label, margs in (("accuracy", "accuracy", "Accuracy", None),
                                               ("f1", "macro_f1", "Macro F1", {"average": "macro"})):
            out.append(EvalResult(task_type=TASK, task_name="Facial expression recognition", dataset_type=name,
                                  dataset_name=f"{name} ({folder})", dataset_split=split, metric_type=metric_type,
                                  metric_name=label, metric_value=round(float(m[key]), 4), metric_args=margs))
    return out


def suite_section(results: dict) -> list[str]:
    """The end-of-training quality suite as a table (none when the run did not report one)."""
    sets = suite_results(results)
    if not sets:
        return []
    lines = ["## Off FER+", "", ("Scored at the end of training on FER+ validation and on faces from other domains "
             "(film stills: SFEW 2.0; posed: CK+), pre-cropped, single view; reported only, never used to choose "
             "a checkpoint (all_results.json, `suite_*`)."), ""]
    return lines + _table(["set", "accuracy", "macro-F1", *CLASSES],
                          [[name, _f(m["accuracy"]), _f(m["macro_f1"]), *[_f(m["recall"].get(c)) if c in m["recall"]
                                                                          else "—" for c in CLASSES]]
                           for name, m in sets.items()])


def card_data(run: RunFolder, repo_id: str, evals: dict[str, dict], license: str | None) -> ModelCardData:
    init = str(run.config.get("fer_init_from", ""))
    base = init.removeprefix("hf-hub:") if _hub_id(init.removeprefix("hf-hub:")) else None
    hub_datasets = [s for s in run.sources if _hub_id(s)]
    return ModelCardData(
        model_name=repo_id.split("/")[-1], library_name="transformers", pipeline_tag=TASK,
        license=license, base_model=base, datasets=hub_datasets or None, metrics=["accuracy", "f1"],
        tags=["image-classification", "timm", "facial-expression-recognition",
              "emotion-recognition", "fer-hf"] + (["synthetic-data", "demo"] if run.synthetic_only else []),
        eval_results=(eval_results(evals) + suite_eval_results(run.results)) or None,
    )


# ----------------------------------------------------------------------------------------------- text

HEADLINE = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("weighted_f1", "weighted-F1"),
            ("balanced_accuracy", "balanced accuracy"), ("ece", "ECE"), ("nll", "NLL"))


def _f(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else NOT_RECORDED


def _table(head: list[str], rows: list[list]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])


def _init_description(init: str) -> str:
    if init.lower() in ("none", "", "scratch", "random"):
        return "random initialisation: trained from scratch, no pretrained weights"
    if _hub_id(init.removeprefix("hf-hub:")):
        return "pretrained timm weights from the Hub; the 7-class head was freshly initialised"
    return "a local checkpoint; the 7-class head was freshly initialised"


def model_section(run: RunFolder, n_parameters: int | None) -> list[str]:
    cfg = run.config
    pre, margs = cfg.get("pretrained_cfg", {}), cfg.get("model_args", {})
    init, size = str(cfg.get("fer_init_from", NOT_RECORDED)), pre.get("input_size", [None])[-1]
    grey = bool((cfg.get("fer_pipeline") or {}).get("grayscale"))
    labels = cfg.get("label_names") or [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    lines = ["## Model", "",
             (f"- **Architecture**: timm `{cfg.get('architecture')}`, `model_args` `{json.dumps(margs, sort_keys=True)}`, "
             "in transformers' `TimmWrapperForImageClassification` (no `trust_remote_code` needed)."),
             f"- **Initialisation** (`fer_init_from`): `{init}` — {_init_description(init)}.",
             (f"- **Input**: a {size}×{size} RGB face crop, {pre.get('interpolation')} resize (no centre crop), "
             + ("turned grey (R = G = B; `fer_pipeline.grayscale`: it learnt from grey faces only), "
                if grey else "")
             + f"normalised with mean {pre.get('mean')} and std {pre.get('std')}."
             + (" `EmotionRecognizer` does the grey step; `pipeline()` and timm read the pixels as given, so give them "
                "grey crops (`Image.open(path).convert(\"L\").convert(\"RGB\")`)." if grey else ""))]
    if n_parameters:
        lines.append(f"- **Parameters**: {n_parameters:,} (counted in model.safetensors).")
    t = cfg.get(TEMPERATURE_KEY)
    lines.append(f"- **Calibration**: temperature {t:.4f} in config.json (`{TEMPERATURE_KEY}`); `EmotionRecognizer` "
                 "divides the logits by it, `pipeline()` and timm do not (same ranking, uncalibrated scores)."
                 if t else "- **Calibration**: no temperature stored; scores are the plain softmax.")
    return lines + ["", "Labels (ids as in config.json):", ""] + _table(["id", "label"], list(enumerate(labels)))


def data_section(run: RunFolder, sources: list[str], synthetic: bool) -> list[str]:
    lines = ["## Training data", ""]
    if not run.counts:
        return lines + [f"{NOT_RECORDED.capitalize()}: the training folder has no class_counts.json."]
    specs = run.data_args.get("datasets")
    lines.append(f"Sources: {', '.join(f'`{s}`' for s in sources)}" + (f" (`--datasets {' '.join(specs)}`)" if specs else "")
                 + ". Each source's labels were mapped to the seven classes by name (contempt/unknown dropped); "
                 "images per split, source and class after that harmonisation (class_counts.json):")
    if synthetic:
        lines[-1] = lines[-1].replace("Sources:", "Sources (procedurally drawn faces from fer_hf/data/synthetic.py, not photographs):")
    rows = [[split, src, *[c.get(k, 0) for k in CLASSES], sum(c.values())]
            for split, per_source in run.counts.items() for src, c in per_source.items()]
    return lines + [""] + _table(["split", "source", *CLASSES, "total"], rows)


def _warmup(a: dict) -> str:
    steps, ratio = a.get("warmup_steps"), a.get("warmup_ratio")
    if isinstance(steps, (int, float)) and 0 < steps < 1:
        return f"{steps:g} of the training steps"
    if ratio:
        return f"{ratio:g} of the training steps"
    return f"{int(steps)} steps" if isinstance(steps, (int, float)) else NOT_RECORDED


def _distillation(a: dict, teacher: dict | None) -> str:
    """The teacher row of the recipe table: kind, weight, temperature, the teacher and its validation figures."""
    if not a.get("teacher_model") and not teacher:
        return "none"
    teacher = teacher or {}
    val = teacher.get("validation") or {}
    scores = (f", its validation accuracy {_f(val['eval_accuracy'])} / macro-F1 {_f(val.get('eval_macro_f1'))}"
              if "eval_accuracy" in val else ", its validation figures not recorded")
    return (f"{a.get('distillation_type', NOT_RECORDED)} (alpha {a.get('distillation_alpha', NOT_RECORDED)}, "
            f"T {a.get('distillation_temperature', NOT_RECORDED)}) from teacher `{teacher.get('architecture', NOT_RECORDED)}` "
            f"at `{teacher.get('path', a.get('teacher_model'))}`{scores}"
            + ("; the teacher scored each face with only the student's flip" if a.get("teacher_view") == "flip" else ""))


def _trained_for(run) -> str:
    """The training time, all parts of a resumed run; a resumed run that predates that record says so."""
    if run.train_seconds is not None:
        return f"trained for {run.train_seconds / 60:.1f} min"
    return f"{run.metric('train_runtime') or 0:.0f} s in its last part (resumed; the earlier parts' time was not kept)"


def _budget(budget: dict | None) -> str:
    """The time-budget row: what fit on the machine the run was sized on (fer_hf/training/budget.py)."""
    if not budget:
        return "none"
    timed = f"{budget['step_seconds']:g} s a step timed, so " if "step_seconds" in budget else ""
    return (f"{budget['minutes']:.4g} min: {timed}{budget['max_steps']} of the recipe's {budget['planned_steps']} steps"
            + (" (kept on resume)" if budget.get("resumed") else ""))


def _has_conv_stem(architecture: str | None) -> bool:
    """A timm hybrid ViT (e.g. `vit_tiny_r_s16_p8_224`): its patches are cut from a CNN stem's output."""
    import timm

    cfg = timm.models.get_pretrained_cfg(architecture) if architecture else None
    return bool(cfg and str(cfg.first_conv).startswith("patch_embed.backbone"))


def recipe_section(run: RunFolder) -> list[str]:
    a, cfg, state, res = run.args, run.config, run.state, run.results
    margs, size = cfg.get("model_args", {}), cfg.get("pretrained_cfg", {}).get("input_size", [None])[-1]

    def arg(key, fmt=lambda v: f"{v:g}" if isinstance(v, float) else str(v)):
        return fmt(a[key]) if a.get(key) is not None else NOT_RECORDED

    trained = (f"{state['epoch']:.2f} epochs, {state['global_step']} steps" if "epoch" in state else NOT_RECORDED)
    planned = f"max_steps {a['max_steps']}" if a.get("max_steps", -1) > 0 else arg("num_train_epochs") + " epochs"
    patch = margs.get("patch_size", "architecture default") if "img_size" in margs else "none (not a patch model)"
    if "img_size" in margs and _has_conv_stem(cfg.get("architecture")):
        patch = f"{patch} (on the convolutional stem's feature map, not on the image)"
    rows = [["image size", f"{size} px"], ["patch size", patch],
            ["dropout / drop path", f"{margs.get('drop_rate', NOT_RECORDED)} / {margs.get('drop_path_rate', NOT_RECORDED)}"],
            ["trained for", trained + (f" (asked: {planned})" if a else "")],
            ["time budget", _budget(run.budget)],
            ["batch size per device", arg("per_device_train_batch_size") if a else state.get("train_batch_size", NOT_RECORDED)],
            ["gradient accumulation", arg("gradient_accumulation_steps")], ["optimizer", arg("optim")],
            ["learning rate", arg("learning_rate")], ["scheduler", arg("lr_scheduler_type")],
            ["warm-up", _warmup(a) if a else NOT_RECORDED], ["weight decay", arg("weight_decay")],
            ["gradient clipping (max norm)", arg("max_grad_norm")], ["label smoothing", arg("label_smoothing_factor")],
            ["CutMix probability / alpha", f"{arg('cutmix_prob')} / {arg('cutmix_alpha')}"],
            ["class-balanced sampling", arg("class_balanced_sampling", lambda v: "yes" if v else "no")],
            ["training targets", run.data_args.get("label_mode", "majority") if a else NOT_RECORDED],
            ["distillation", _distillation(a, cfg.get("fer_teacher"))],
            ["precision", res.get("precision", NOT_RECORDED)], ["seed", arg("seed")]]
    source = run.args_from or "config.json and trainer_state.json only (the run recorded no arguments)"
    lines = ["## Training procedure", "", ("Fine-tuned with fer-hf's `FerTrainer` (transformers `Trainer`; CutMix and "
             f"class-balanced sampling when enabled). Hyper-parameters from {source}:"), ""]
    lines += _table(["setting", "value"], rows)
    if "train_loss" in res:
        lines += ["", (f"{res.get('train_samples', NOT_RECORDED)} training images; final training loss "
                  f"{_f(res['train_loss'])}; {_trained_for(run)}.")]
    if "eval_accuracy" in res:
        lines.append(f"End-of-training validation (all_results.json, {res.get('eval_samples', NOT_RECORDED)} images): "
                     f"accuracy {_f(res['eval_accuracy'])}, macro-F1 {_f(res.get('eval_macro_f1'))}.")
    return lines


def _one_eval(name: str, m: dict, staged: set[str]) -> list[str]:
    lines = [f"### {name}", "", (f"Split `{m['split']}` of {', '.join(f'`{d}`' for d in m['datasets'])}: "
             f"{m['n_images']} images ({m['n_skipped']} unreadable, skipped); temperature {m['temperature']:.4f} "
             f"({m['temperature_from']})."), ""]
    views = [("single view", m)] + ([("flip TTA", m["tta_flip"])] if "tta_flip" in m else [])
    lines += _table(["metric", *[v for v, _ in views]], [[label, *[_f(b.get(k)) for _, b in views]] for k, label in HEADLINE])
    lines += ["", "Per class (single view):", ""]
    lines += _table(["class", "precision", "recall", "F1", "support"],
                    [[c, _f(m.get(f"precision_{c}")), _f(m.get(f"recall_{c}")), _f(m.get(f"f1_{c}")),
                      m.get(f"support_{c}", NOT_RECORDED)] for c in CLASSES])
    lines += ["", "Per source (single view):", ""]
    lines += _table(["source", "images", "accuracy", "macro-F1", "ECE"],
                    [[s, v["n_images"], _f(v["accuracy"]), _f(v["macro_f1"]), _f(v["ece"])]
                     for s, v in m.get("per_source", {}).items()])
    if c := m.get("calibration"):
        lines += ["", (f"Temperature fitted on this split (so its calibration is optimistic): T {_f(c['temperature_before'])} "
                  f"-> {_f(c['temperature'])}, ECE {_f(c['ece_before'])} -> {_f(c['ece_after'])}.")]
    here = [f for f in ("report.md", "confusion_matrix.png", "reliability.png") if f"eval/{name}/{f}" in staged]
    figures = [f"![{f[:-4].replace('_', ' ')}](eval/{name}/{f})" for f in here if f.endswith(".png")]
    report = [f"Full report: [eval/{name}/report.md](eval/{name}/report.md)."] if "report.md" in here else []
    return lines + ([""] + report if report else []) + (["", " ".join(figures)] if figures else [])


def eval_section(evals: dict[str, dict], staged: set[str]) -> list[str]:
    lines = ["## Evaluation", ""]
    if not evals:
        return lines + [("No evaluation results: this card was made without an evaluation folder "
                        "(`scripts/evaluate.py` output, passed to `scripts/push_to_hub.py --eval_dir`).")]
    lines.append("From scripts/evaluate.py (rounded to 4 decimals; full values in `eval/<name>/metrics.json`). "
                 "The card metadata reports the single-view figures, which is what `pipeline()` computes.")
    for name, m in evals.items():
        lines += [""] + _one_eval(name, m, staged)
    return lines


USAGE = '''## How to use

Give it a face crop (or use `EmotionRecognizer`, which finds the faces first):

```python
from transformers import pipeline
clf = pipeline("image-classification", model="{repo}")
clf("face.jpg", top_k=7)

# fer-hf (this model's project): face detection + the calibrated temperature
from fer_hf.inference import EmotionRecognizer
rec = EmotionRecognizer.from_pretrained("{repo}")
for face in rec.recognize("photo.jpg"):
    print(face.box, face.emotion, face.confidence)
{timm}```
'''
TIMM_USAGE = '''
# timm: the weights are stored in timm's key layout (checked: this folder loads with timm {version})
import timm
model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()
labels = model.pretrained_cfg["label_names"]
'''


def usage_section(repo_id: str, timm_check: dict | None) -> str:
    """How to use; the timm lines only when timm was seen loading the staged folder (`timm_check["ok"]`)."""
    ok = bool(timm_check and timm_check.get("ok"))
    text = USAGE.format(repo=repo_id, timm=TIMM_USAGE.format(repo=repo_id, version=timm_check["version"]) if ok else "")
    if timm_check and not ok:
        text += (f"\n`timm.create_model(\"hf-hub:{repo_id}\", pretrained=True)` does not load this model "
                 f"(timm {timm_check['version']}: {timm_check['error']}); use transformers as above.\n")
    return text


RESPONSIBLE = '''## Intended use

Research, teaching and prototyping of facial expression recognition: comparing models, studying
datasets, demos in which people choose to take part. A prediction says which of seven prototypical
*expressions* a face crop resembles, and how confident the model is.

## Limitations

- **Dataset bias**: FER2013, AffectNet and RAF-DB are web-scraped; their age, gender, skin tone and cultural
  make-up is uneven and partly unknown, and accuracy differs between groups. Measure it on your population.
- **Posed vs spontaneous**: much of the data is posed or exaggerated; subtle, mixed or spontaneous
  expressions are recognised far less reliably.
- **Input**: the model expects a single, roughly frontal face crop; on a whole photo use the face detector
  (`EmotionRecognizer`). Occlusion, extreme pose, low light and low resolution degrade predictions.
- **Seven basic emotions are a simplification**: real expressions are blended, contextual and culturally
  shaped; neighbouring classes (fear/surprise, anger/disgust, neutral/sadness) are easily confused.
{synthetic}
## Ethical considerations

- Do not use it to make or inform decisions about people: hiring, education, insurance, policing, border
  control, surveillance, or medical and psychological diagnosis.
- A facial expression is not an inner feeling: people smile when they are not happy and feel without showing it.
- Analyse faces only with the informed consent of the people shown, and tell them what is inferred.
'''


def card_body(run: RunFolder, repo_id: str, evals: dict[str, dict], license: str | None, files: dict) -> str:
    synthetic, sources = run.synthetic_only, run.sources
    lines = [f"# {repo_id.split('/')[-1]}", "", ("Facial expression recognition: classifies a face crop into seven "
             f"emotions ({', '.join(CLASSES)}). Trained and published with fer-hf."), ""]
    if synthetic:
        lines += [("> **Demo model.** Trained only on fer-hf's synthetic faces: it shows the pipeline works; "
                  "it is not a facial expression recogniser for real photographs."), ""]
    lines += model_section(run, files.get("n_parameters")) + [""] + data_section(run, sources, synthetic) + [""]
    lines += recipe_section(run) + [""] + eval_section(evals, files.get("staged", set())) + [""]
    if suite := suite_section(run.results):
        lines += suite + [""]
    lines.append(usage_section(repo_id, files.get("timm")))
    demo = ("- **This is a demo**: trained on synthetic drawings, its figures say nothing about real faces.\n"
            if synthetic else "")
    lines.append(RESPONSIBLE.format(synthetic=demo))
    lines += ["## License", "", f"`{license}`." if license else "No licence is declared for these weights. They "
              "carry the terms of their training data (FER2013, AffectNet and RAF-DB are for research only); "
              "republish with `--license` once you know them."]
    return "\n".join(lines) + "\n"


def build_model_card(model_dir: str, repo_id: str, evals: dict[str, dict] | None = None,
                     license: str | None = "auto", files: dict | None = None) -> ModelCard:
    """The card for `model_dir` published as `repo_id`; `evals` maps eval/<name> to its metrics.json.

    `license`: a Hub licence id, None (none declared), or "auto" (apache-2.0 when trained on synthetic
    data only). `files` describes the staged folder: `staged` (relative paths, so the card links only
    to files that are there), `n_parameters`, and `timm` ({"ok", "version", "error"} from loading it
    with timm; without it the card shows no timm snippet).
    """
    evals, files = evals or {}, files or {}
    run = RunFolder.read(model_dir)
    if license == "auto":  # the project's code and synthetic data are Apache-2.0; real datasets have their own terms
        license = "apache-2.0" if run.synthetic_only else None
    body = card_body(run, repo_id, evals, license, files)
    return ModelCard(f"---\n{card_data(run, repo_id, evals, license).to_yaml()}\n---\n\n{body}")


def read_evals(eval_dirs: list[str], model_dir: str | None = None) -> dict[str, tuple[str, dict]]:
    """{name: (folder, metrics.json)} of scripts/evaluate.py output folders; names from the folder names, made
    unique. Warns when a folder evaluated another model than `model_dir`."""
    out = {}
    for folder in eval_dirs:
        path = os.path.join(folder, "metrics.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--eval_dir {folder!r} has no metrics.json; expected an output_dir of scripts/evaluate.py.")
        with open(path) as f:
            metrics = json.load(f)
        if model_dir and os.path.realpath(os.path.expanduser(str(metrics.get("model")))) != os.path.realpath(model_dir):
            logger.warning("%s evaluated --model %r, not %r: check it is the same model.", path, metrics.get("model"), model_dir)
        base = re.sub(r"[^\w.-]", "_", os.path.basename(os.path.normpath(folder))) or "eval"
        name, i = base, 2
        while name in out:
            name, i = f"{base}-{i}", i + 1
        out[name] = (folder, metrics)
    return out
