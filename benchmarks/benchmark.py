"""Side-by-side speed and memory figures for training and inference, with each target beside its ratio.

    python benchmarks/benchmark.py --output bench.json            # ~8 minutes on 2 CPU cores
    python benchmarks/benchmark.py --quick --output bench.json    # tiny model, 32 px, < 60 s (used by a test)

Everything is measured in ONE process, one after the other, so the ratios compare like with like even
on a shared, noisy machine (absolute img/s and ms are not portable; the ratios mostly are):

- training: the full FerTrainer path (dataset, lazy decode + augmentation, class-balanced sampler,
  CutMix, logging, grad clipping, scheduler) vs a bare step (same model, batch, size and precision on
  random tensors, AdamW, the same soft-target loss, clipping), alternated over `--rounds` so that drift
  on a shared machine hits both. ViT-Tiny at 112 and 224 px, and our CPU recipe
  (scripts/configs/fer2013_cpu.yaml: its image and patch size and augmentation). Target: full >= 0.90 x bare.
- the seed's recipe (per-sample PIL transforms at 224 px, a plain loop, fp32) vs our default CPU
  recipe. Target: >= 2x. Also the per-image preprocessing alone.
- inference: EmotionRecognizer on a 640x480 JPEG with one face and with eight, split into decode,
  detection, crop and model (p50/p95), with the recipe's network (or --model) as it is served: exported
  to ONNX and quantized to int8 (fer_hf.export.onnx), run by onnxruntime. Targets: one face <= 30 ms
  p50; eight faces <= 3x one face. Eager PyTorch and ViT-Tiny at 224 px beside it, for comparison.
- peak RSS of this (training) process and of a Space process (space/app.py imported, one call).
bf16 is measured only where the CPU has native bf16; elsewhere it is ~20x slower and reported as skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from fer_hf.data.sources import DataArguments, build_datasets
from fer_hf.data.transforms import FerCollator, FerTransform
from fer_hf.models.modeling import ModelArguments, build_model, preprocessing_config
from fer_hf.training.trainer import FerTrainer, FerTrainingArguments, soft_cross_entropy
from fer_hf.utils.device import cpu_has_native_bf16

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FER2013 = os.path.join(ROOT, "..", "shared", "data", "fer2013")
RECIPE = os.path.join(ROOT, "scripts", "configs", "fer2013_cpu.yaml")
TARGETS = {"full_vs_bare": 0.90, "recipe_vs_seed": 2.0, "one_face_p50_ms": 30.0, "eight_vs_one": 3.0}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="bench.json")
    p.add_argument("--quick", action="store_true", help="Tiny model, 32 px, few steps: a smoke run (< 60 s).")
    p.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    p.add_argument("--steps", type=int, default=8, help="Measured training steps per round (after warm-up).")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4,
                   help="Full path and bare step alternate this many times, so machine drift hits both alike.")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--recipe", default=RECIPE, help="Our default CPU recipe (image/patch size, augmentation).")
    p.add_argument("--calls", type=int, default=50, help="Inference calls per measurement (p50/p95).")
    p.add_argument("--data", default=FER2013 if os.path.isdir(FER2013) else "synthetic")
    p.add_argument("--model", default=None, help="A model folder for inference (default: ViT-Tiny, random init).")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="torch threads for training (use 1 when other processes share the cores).")
    p.add_argument("--compile", action="store_true", help="Also time torch.compile for the inference model.")
    p.add_argument("--skip_space", action="store_true", help="Do not measure the Space process's RSS.")
    args = p.parse_args(argv)
    args.recipe_cfg = recipe_settings(args.recipe, args.quick)
    if args.quick:
        args.sizes, args.steps, args.warmup, args.batch_size, args.rounds = [32], 3, 1, 8, 1
        args.calls, args.data = 5, "synthetic"
        args.threads = 1  # a smoke run on a shared machine: no OpenMP spin-waiting against other processes
        args.skip_space = True  # a second Python process importing gradio costs more than the rest of --quick
    return args


def model_args(size: int, quick: bool, patch: int | None = None) -> ModelArguments:
    if quick:  # the tests' tiny ViT: ViT-Tiny's width, one block, patch 8
        return ModelArguments(init_from="none", image_size=size, patch_size=8, model_args='{"depth": 1}')
    return ModelArguments(init_from="none", image_size=size, patch_size=patch)  # the compute of a trained one


def recipe_settings(path: str, quick: bool) -> dict:
    """Image size, patch size, augmentation and sampling of a training YAML (fer2013_cpu.yaml by default)."""
    import yaml

    with open(path) as f:
        cfg = yaml.safe_load(f)
    defaults = DataArguments()
    # --quick swaps in the tests' tiny network (32 px, patch 8; model_args), so the name says what ran
    return {"name": os.path.basename(path), "size": 32 if quick else cfg["image_size"],
            "patch": 8 if quick else cfg.get("patch_size"),
            "augment": {k: cfg.get(k, v) for k, v in defaults.augmentation().items()},
            "cutmix_prob": cfg.get("cutmix_prob", 0.0), "balanced": cfg.get("class_balanced_sampling", False)}


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class StepTimer(TrainerCallback):
    """Wall time of each optimiser step: begin->end (compute) and end->end (with data loading)."""

    def __init__(self):
        self.begin, self.ends, self.compute = 0.0, [], []

    def on_step_begin(self, args, state, control, **kwargs):
        sync(args.device)
        self.begin = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        sync(args.device)  # GPU work is asynchronous: wait for it, or the step looks free
        self.ends.append(time.perf_counter())
        self.compute.append(self.ends[-1] - self.begin)


def full_path(train, size: int, precision: str, args, device: str = "cpu", workers: int = 0, recipe: dict | None = None) -> dict:
    """img/s of FerTrainer.train over the steps after warm-up: the seed's recipe (default augmentation, CutMix,
    class-balanced sampling) or, given `recipe` (recipe_settings), that one's patch size and augmentation."""
    recipe = recipe or {"patch": None, "augment": {}, "cutmix_prob": 0.5, "balanced": True}
    model = build_model(model_args(size, args.quick, recipe["patch"]))
    pre = preprocessing_config(model.config)
    train.set_transform(FerTransform(size, train=True, **recipe["augment"]))
    timer = StepTimer()
    targs = FerTrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="fer_bench_"), max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.batch_size, learning_rate=3e-4, weight_decay=0.05,
        lr_scheduler_type="cosine", max_grad_norm=1.0, label_smoothing_factor=0.1, cutmix_prob=recipe["cutmix_prob"],
        class_balanced_sampling=recipe["balanced"], logging_steps=2, report_to="none", save_strategy="no",
        eval_strategy="no", dataloader_num_workers=workers, bf16=precision == "bf16", fp16=precision == "fp16",
        use_cpu=device == "cpu",
        disable_tqdm=True, seed=42)
    trainer = FerTrainer(model=model, args=targs, train_dataset=train,
                         data_collator=FerCollator(pre["mean"], pre["std"], size), callbacks=[timer])
    trainer.train()
    measured = np.diff(timer.ends[args.warmup - 1:]) if args.warmup else np.diff(timer.ends)
    compute = np.asarray(timer.compute[args.warmup:])
    return {"img_s": args.batch_size / float(np.mean(measured)),
            "compute_img_s": args.batch_size / float(np.mean(compute)),
            "data_share": float(1 - compute[-len(measured):].sum() / measured.sum())}


def timed_steps(step, n_warmup: int, n: int, device: str = "cpu") -> float:
    """Mean seconds per call of `step()` after `n_warmup` unmeasured calls."""
    for _ in range(n_warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return (time.perf_counter() - start) / n


def bare_step(size: int, precision: str, args, device: str = "cpu", patch: int | None = None) -> dict:
    """The same model, batch and precision on random tensors: the ceiling for the full path."""
    model = build_model(model_args(size, args.quick, patch)).train().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, size, size, generator=g).to(device)
    targets = F.one_hot(torch.randint(0, 7, (args.batch_size,), generator=g), 7).float().to(device) * 0.9 + 0.1 / 7
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(enabled=precision == "fp16")  # as Trainer/Accelerate do for fp16

    def step():
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            logits = model(pixel_values=x).logits
        scaler.scale(soft_cross_entropy(logits, targets)).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # Trainer clips too (max_grad_norm)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return {"img_s": args.batch_size / timed_steps(step, args.warmup, args.steps, device)}


def compare(train, size: int, precision: str, args, recipe: dict | None = None) -> dict:
    """Full path vs bare step, alternated over `args.rounds` rounds; img/s over all measured steps of each."""
    fulls, bares = [], []
    for r in range(args.rounds):  # full first, then bare first: whichever runs later in the process is not favoured
        for which in ("full", "bare") if r % 2 == 0 else ("bare", "full"):
            gc.collect()  # the previous run's Trainer/model cycles, freed now rather than during a timed step
            if which == "full":
                fulls.append(full_path(train, size, precision, args, recipe=recipe))
            else:
                bares.append(bare_step(size, precision, args, patch=(recipe or {}).get("patch")))
    # every round times the same number of steps, so the rate over all of them is the harmonic mean
    rate = lambda runs, key="img_s": len(runs) / sum(1 / r[key] for r in runs)
    full = {"img_s": rate(fulls), "compute_img_s": rate(fulls, "compute_img_s"),
            "data_share": float(np.mean([r["data_share"] for r in fulls]))}
    bare = {"img_s": rate(bares)}
    return {"full": full, "bare": bare, "full_vs_bare": full["img_s"] / bare["img_s"],
            "rounds": [f["img_s"] / b["img_s"] for f, b in zip(fulls, bares)]}


def seed_transform(size: int = 224):
    """The seed project's per-sample PIL pipeline (torchvision v1 on PIL images)."""
    from torchvision import transforms as T

    return T.Compose([T.Resize((size, size)), T.RandomHorizontalFlip(), T.RandomRotation(10),
                      T.ColorJitter(0.2, 0.2, 0.2), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])


def decode(value):
    from fer_hf.data.transforms import open_image

    return open_image(value)


def seed_baseline(train, args, size: int = 224) -> dict:
    """The seed's loop: PIL decode + per-sample transforms, DataLoader, ViT at 224 px, fp32, AdamW."""
    images = train.with_format(None).select_columns(["image", "label"])
    transform = seed_transform(size)
    loader = torch.utils.data.DataLoader(
        [i for i in range(len(images))], batch_size=args.batch_size, shuffle=True, num_workers=0,
        collate_fn=lambda idx: (torch.stack([transform(decode(images[i]["image"])) for i in idx]),
                                torch.tensor([images[i]["label"] for i in idx])))
    model = build_model(model_args(size, args.quick)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
    batches = iter(loader)

    def step():
        x, y = next(batches)
        F.cross_entropy(model(pixel_values=x).logits, y, label_smoothing=0.1).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return {"img_s": args.batch_size / timed_steps(step, args.warmup, args.steps), "image_size": size}


def preprocessing(train, args, n: int) -> dict:
    """Images/s of preprocessing alone (decode, resize, augment, normalise; no model), one thread."""
    values = train.with_format(None).select(range(min(n, len(train))))["image"]
    seed = seed_transform(224)
    out = {"seed_pil_224": len(values) / timed_steps(lambda: [seed(decode(v)) for v in values], 0, 1)}
    recipe = args.recipe_cfg
    for size, augment in ((224, {}), (recipe["size"], recipe["augment"])):
        ours, collate = FerTransform(size, train=True, **augment), FerCollator([0.5] * 3, [0.5] * 3, size)
        run = lambda: [collate([{"pixel_values": ours.one(v), "labels": 0} for v in values[i:i + 32]])  # noqa: B023
                       for i in range(0, len(values), 32)]
        out[f"ours_batched_{size}"] = len(values) / timed_steps(run, 0, 1)
    return out


def training(args) -> dict:
    data = build_datasets(DataArguments(datasets=[args.data], synthetic_per_class=4 if args.quick else 50,
                                        max_eval_samples=10), seed=42)
    train = data["train"]
    native = cpu_has_native_bf16()
    precisions = ["fp32"] + (["bf16"] if native else [])
    out = {"data": args.data, "train_images": len(train), "batch_size": args.batch_size, "steps": args.steps,
           "bf16": "native, measured" if native else "emulated (no AVX512-BF16/AMX), skipped", "runs": {}}
    torch.set_num_threads(args.threads)
    # Unmeasured: the process's first training steps are slower (allocator growth, oneDNN primitive caches),
    # which would count against whichever run comes first.
    full_path(train, args.sizes[0], precisions[0], args)
    for size in args.sizes:
        for precision in precisions:
            out["runs"][f"{size}px_{precision}"] = compare(train, size, precision, args)
    cfg, precision = args.recipe_cfg, "bf16" if native else "fp32"
    recipe = f"recipe_{cfg['size']}px_p{cfg['patch']}_{precision}"
    out["runs"][recipe] = compare(train, cfg["size"], precision, args, recipe=cfg)
    base_size = 32 if args.quick else 224
    out["seed_baseline"] = seed_baseline(train, args, base_size)
    out["recipe"] = recipe
    out["recipe_vs_seed"] = out["runs"][recipe]["full"]["img_s"] / out["seed_baseline"]["img_s"]
    same = f"{base_size}px_fp32"
    if same in out["runs"]:  # how much of the gain is the pipeline, and how much the smaller image
        out["same_size_vs_seed"] = out["runs"][same]["full"]["img_s"] / out["seed_baseline"]["img_s"]
    torch.set_num_threads(1)
    out["preprocessing_img_s"] = preprocessing(train, args, 16 if args.quick else 256)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def scene(n_faces: int, detector, tries: int = 30) -> tuple[bytes, int]:
    """A 640x480 JPEG of drawn faces (one large, or eight in a 4x2 grid) that the detector finds all of."""
    import io

    from PIL import Image

    from fer_hf.data.labels import CLASSES
    from fer_hf.data.synthetic import draw_face

    size, spots = (200, [(220, 140)]) if n_faces == 1 else (140, [(10 + 158 * (i % 4), 60 + 200 * (i // 4)) for i in range(8)])
    for seed in range(tries):  # detectors miss some drawn faces; take the first scene with all found
        rng, canvas = np.random.default_rng(seed), Image.new("RGB", (640, 480), (120, 130, 140))
        for i, at in enumerate(spots):
            canvas.paste(draw_face(CLASSES[i % 7], rng, size), at)
        found = len(detector.detect(canvas)) if detector is not None else 0
        if found == n_faces:
            break
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue(), found


def split_timings(rec, data: bytes, calls: int) -> dict:
    """p50/p95 of each stage of one call (decode, detection, crop + preprocess, model) and of whole calls."""
    from fer_hf.inference.faces import crop_face
    from fer_hf.inference.recognizer import load_image

    stages = {k: [] for k in ("decode", "detection", "crop", "model", "total")}
    for _ in range(calls + 3):  # the first 3 calls warm caches and allocators; dropped below
        t0 = time.perf_counter()
        image = load_image(data)
        t1 = time.perf_counter()
        dets = rec.detector.detect(image)
        t2 = time.perf_counter()
        x = rec.pixel_values([crop_face(image, d, align=rec.align, framing=rec.framing) for d in dets])
        t3 = time.perf_counter()
        rec._logits(x).softmax(-1)
        t4 = time.perf_counter()
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[k].append(v)
    for _ in range(calls + 3):
        start = time.perf_counter()
        rec.recognize(data)
        stages["total"].append(time.perf_counter() - start)
    return {k: percentiles(v[3:]) for k, v in stages.items()}


def thread_effect(rec, data: bytes, calls: int) -> dict:
    """One request alone, and two concurrent clients (a busy server), at 1 and at 2 torch threads."""
    from concurrent.futures import ThreadPoolExecutor

    out = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        alone = [timed_steps(lambda: rec.recognize(data), 1 if i == 0 else 0, 1) for i in range(calls // 2)]
        with ThreadPoolExecutor(2) as pool:
            start = time.perf_counter()
            list(pool.map(lambda _: rec.recognize(data), range(calls)))
            rate = calls / (time.perf_counter() - start)
        out[f"{threads}_threads"] = {"alone_p50_ms": percentiles(alone)["p50_ms"], "two_clients_calls_s": rate}
    torch.set_num_threads(1)
    return out


def compile_effect(rec, data: bytes, calls: int) -> dict:
    """Model-stage p50 eager vs torch.compile (after its compile), and what compiling cost."""
    x = rec.pixel_values([load_crop(data)])
    eager = [timed_steps(lambda: rec._logits(x), 0, 1) for _ in range(calls)]
    model, start = rec.model, time.perf_counter()
    rec.model = torch.compile(model)
    rec._logits(x)
    compile_s = time.perf_counter() - start
    compiled = [timed_steps(lambda: rec._logits(x), 0, 1) for _ in range(calls)]
    rec.model = model
    return {"eager_p50_ms": percentiles(eager)["p50_ms"], "compiled_p50_ms": percentiles(compiled)["p50_ms"],
            "compile_seconds": compile_s}


def detector_size_effect(detector, one: bytes, eight: bytes, calls: int) -> dict | str:
    """Faces found and detection p50 when photos are detected at 320 or 960 px on the long side (default 480)."""
    from fer_hf.inference.faces import YuNetDetector
    from fer_hf.inference.recognizer import load_image

    if not isinstance(detector, YuNetDetector):
        return f"not measured ({detector.name} detector)"
    out = {}
    for side in (320, 960):
        other = YuNetDetector(detector.path, max_side=side)
        for name, data in (("one_face", one), ("eight_faces", eight)):
            image = load_image(data)
            out[f"{side}px_{name}"] = {
                "found": len(other.detect(image)),
                "p50_ms": percentiles([timed_steps(lambda: other.detect(image), 0, 1) for _ in range(calls)])["p50_ms"]}  # noqa: B023
    return out


def load_crop(data: bytes):
    from fer_hf.inference.recognizer import load_image

    return load_image(data).resize((96, 96))


def onnx_int8(model, detector):
    """The same network exported by fer_hf.export.onnx and quantized to int8, run by onnxruntime."""
    from fer_hf.export.onnx import export_files
    from fer_hf.inference.onnx_backend import OnnxClassifier
    from fer_hf.inference.recognizer import EmotionRecognizer

    _, paths = export_files(model, os.path.join(tempfile.mkdtemp(prefix="fer_bench_onnx_"), "model.onnx"), "int8")
    return EmotionRecognizer(OnnxClassifier(paths["int8"]), detector), paths["int8"]


def one_and_eight(rec, one: bytes, eight: bytes, calls: int) -> dict:
    out = {"one_face": split_timings(rec, one, calls), "eight_faces": split_timings(rec, eight, calls)}
    out["eight_vs_one"] = out["eight_faces"]["total"]["p50_ms"] / out["one_face"]["total"]["p50_ms"]
    return out


def inference(args) -> dict:
    """The serving path (ONNX int8: `EmotionRecognizer.from_pretrained("x.int8.onnx")`, as the Space runs it with
    FER_MODEL=x.int8.onnx) with the targets, and the same network in eager PyTorch beside it."""
    from fer_hf.inference.faces import make_detector
    from fer_hf.inference.recognizer import EmotionRecognizer
    from fer_hf.models.modeling import load_pretrained

    yunet = os.path.join(ROOT, "..", "shared", "models", "yunet", "face_detection_yunet_2023mar.onnx")
    if os.path.isfile(yunet):
        os.environ.setdefault("FER_YUNET_PATH", yunet)
    torch.set_num_threads(1)  # the Space's setting: one thread per request
    detector, cfg = make_detector("auto"), args.recipe_cfg
    torch_rec = None
    if args.model and args.model.endswith(".onnx"):  # given an exported model: that is what is served
        from fer_hf.inference.onnx_backend import OnnxClassifier

        rec, args.model_dir, backend = EmotionRecognizer(OnnxClassifier(args.model), detector), args.model, "onnx"
    else:  # default: the network our CPU recipe trains (random weights: the same compute)
        model = load_pretrained(args.model) if args.model else build_model(model_args(cfg["size"], args.quick, cfg["patch"]))
        torch_rec = EmotionRecognizer(model, detector)
        rec, args.model_dir = onnx_int8(model, detector)
        backend = "onnx_int8"
    one, found_one = scene(1, detector)
    eight, found_eight = scene(8, detector)
    out = {"detector": detector.name, "model_image_size": rec.transform.image_size, "torch_threads": 1,
           "backend": backend, "faces_found": {"one_face": found_one, "eight_faces": found_eight},
           **one_and_eight(rec, one, eight, args.calls)}
    if torch_rec is not None:
        out["pytorch"] = one_and_eight(torch_rec, one, eight, args.calls)
    if not args.quick:  # the seed's network size, for comparison (no target)
        big = EmotionRecognizer(build_model(model_args(224, False)), detector)
        out["vit_tiny_224"] = {case: percentiles([timed_steps(lambda: big.recognize(data), 1 if i == 0 else 0, 1)  # noqa: B023
                                                  for i in range(args.calls)])
                               for case, data in (("one_face", one), ("eight_faces", eight))}
    out["threads"] = thread_effect(torch_rec or rec, one, max(4, args.calls // 2))
    out["detection_other_sizes"] = detector_size_effect(detector, one, eight, args.calls)
    out["compile"] = (compile_effect(torch_rec, one, args.calls) if args.compile and torch_rec is not None
                      else "not measured (pass --compile and a PyTorch model)")
    return out


SPACE_SNIPPET = """
import importlib.util
import sys
# space/app.py is a script, not a package module: loaded from its file (cwd: the repository)
spec = importlib.util.spec_from_file_location("app", "space/app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)  # gradio, cv2, torch, fer_hf: everything the Space process imports
rec = app.EmotionRecognizer.from_pretrained(sys.argv[1], detector="auto")
data = open(sys.argv[2], "rb").read()
for _ in range(3):
    rec.recognize(data)
app.build_demo(rec, sys.argv[3])
# VmHWM, not ru_maxrss: Linux carries the parent's peak across fork+exec into the child's ru_maxrss.
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024)
"""


def space_rss(args) -> float | str:
    """Peak RSS (MiB) of a fresh process that imports space/app.py, loads the model, answers 3 calls."""
    import subprocess

    image = os.path.join(tempfile.mkdtemp(prefix="fer_bench_space_"), "scene.jpg")
    from fer_hf.inference.faces import make_detector

    with open(image, "wb") as f:
        f.write(scene(8, make_detector("auto"))[0])
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.run([sys.executable, "-c", SPACE_SNIPPET, args.model_dir, image, os.path.dirname(image)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
    return float(proc.stdout.strip().splitlines()[-1])

def main(argv: list[str] | None = None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    result = {"settings": {k: v for k, v in vars(args).items()}, "torch": torch.__version__,
              "cpu_count": os.cpu_count(), "targets": TARGETS}
    seconds = result["section_seconds"] = {}
    for name, run in (("training", training), ("inference", inference),
                      ("space_peak_rss_mib", lambda a: "skipped (--skip_space)" if a.skip_space else space_rss(a))):
        start = time.perf_counter()
        result[name] = run(args)
        seconds[name] = time.perf_counter() - start
    result["checks"] = checks(result)
    result["seconds"] = time.perf_counter() - started
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(table(result))
    return result


def checks(r: dict) -> dict:
    """Each target beside its measured value: {name: (measured, target, met)}."""
    t, inf = r["training"], r["inference"]
    out = {f"full_vs_bare_{k}": (v["full_vs_bare"], TARGETS["full_vs_bare"], v["full_vs_bare"] >= TARGETS["full_vs_bare"])
           for k, v in t["runs"].items() if "full_vs_bare" in v}
    out["recipe_vs_seed"] = (t["recipe_vs_seed"], TARGETS["recipe_vs_seed"], t["recipe_vs_seed"] >= TARGETS["recipe_vs_seed"])
    p50 = inf["one_face"]["total"]["p50_ms"]
    out["one_face_p50_ms"] = (p50, TARGETS["one_face_p50_ms"], p50 <= TARGETS["one_face_p50_ms"])  # as served
    out["eight_vs_one"] = (inf["eight_vs_one"], TARGETS["eight_vs_one"], inf["eight_vs_one"] <= TARGETS["eight_vs_one"])
    return out


def table(r: dict) -> str:
    t, inf = r["training"], r["inference"]
    lines = [f"training on {t['data']} ({t['train_images']} images), batch {t['batch_size']}, bf16: {t['bf16']}",
             f"{'run':<22}{'full img/s':>12}{'bare img/s':>12}{'ratio':>8}{'data %':>8}  rounds"]
    for k, v in t["runs"].items():
        bare = v.get("bare", {}).get("img_s", float("nan"))
        lines.append(f"{k:<22}{v['full']['img_s']:>12.1f}{bare:>12.1f}{v.get('full_vs_bare', float('nan')):>8.2f}"
                     f"{100 * v['full']['data_share']:>8.1f}  " + " ".join(f"{x:.2f}" for x in v.get("rounds", [])))
    lines.append(f"seed baseline {t['seed_baseline']['image_size']} px: {t['seed_baseline']['img_s']:.1f} img/s; "
                 f"recipe {t['recipe']}: x{t['recipe_vs_seed']:.2f}" +
                 (f"; same size: x{t['same_size_vs_seed']:.2f}" if "same_size_vs_seed" in t else ""))
    lines.append("preprocessing img/s: " + ", ".join(f"{k} {v:.0f}" for k, v in t["preprocessing_img_s"].items()))
    lines.append(f"inference: {inf['detector']} detector, model {inf['model_image_size']} px, one thread; "
                 f"served by {inf['backend']}" + (", eager PyTorch beside it" if "pytorch" in inf else ""))
    lines.append(f"{'inference ms':<22}" + "".join(f"{s + ' p50/p95':>18}" for s in inf["one_face"]))
    for name, figures in ((inf["backend"], inf), ("pytorch", inf.get("pytorch"))):
        for case in ("one_face", "eight_faces") if figures else ():
            lines.append(f"{name + ' ' + case:<22}" +
                         "".join(f"{v['p50_ms']:>10.1f}/{v['p95_ms']:<7.1f}" for v in figures[case].values()))
    if "vit_tiny_224" in inf:
        big = inf["vit_tiny_224"]
        lines.append(f"ViT-Tiny 224 px instead: one face {big['one_face']['p50_ms']:.1f} ms p50, eight faces "
                     f"{big['eight_faces']['p50_ms']:.1f} ms p50")
    lines.append(f"peak RSS: training {t['peak_rss_mib']:.0f} MiB, Space {r['space_peak_rss_mib']} MiB")
    lines.append(f"{'check':<36}{'measured':>10}{'target':>8}  met")
    lines += [f"{k:<36}{m:>10.2f}{tg:>8.2f}  {'yes' if ok else 'NO'}" for k, (m, tg, ok) in r["checks"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
