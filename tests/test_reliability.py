"""Reliability and scale-out: kill and resume, two processes on CPU, determinism, bad input through
every entry point (predict CLI, Space API, dataset loading), load, and safe loading of weights.

Tests named `test_slow_*` start real processes (train.py, `accelerate launch`, the Space server):
20-60 s each on two cores. They run in CI like the others.
"""

import ast
import io
import json
import logging
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import load_test
import numpy as np
import predict
import pytest
import torch
import train
from conftest import ROOT, TINY_MODEL, random_image
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image
from safetensors.torch import load_file
from test_space import call, client, free_port, png_claiming, space  # noqa: F401  (client, space: fixtures)
from torch.utils.data import DataLoader

from fer_hf.data.labels import CLASSES
from fer_hf.data.sources import DataArguments, build_datasets
from fer_hf.data.transforms import BadImageError, FerCollator, FerTransform
from fer_hf.inference.recognizer import EmotionRecognizer
from fer_hf.models.modeling import ModelArguments, build_model
from fer_hf.training.trainer import EpochWeightedSampler, FerTrainingArguments, class_weights, last_complete_checkpoint

QUICKSTART = str(ROOT / "scripts" / "configs" / "quickstart.yaml")
TINY = {"architecture": "vit_tiny_patch16_224", "init_from": "none", "image_size": 32, "patch_size": 8, "model_args": '{"depth": 1}'}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
TIMINGS = ("_runtime", "_per_second")  # metrics that measure the machine, not the model


def resumable_args(out) -> list[str]:
    """12 steps of the tiny model on 4 synthetic images per class and source (~11 steps an epoch, so the
    run crosses an epoch boundary), a checkpoint every 3 steps, CutMix on about half of the batches."""
    return [QUICKSTART, "--datasets", "synthetic", "--synthetic_per_class", "4", "--output_dir", str(out), *TINY_MODEL,
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--max_steps", "12",
            "--save_strategy", "steps", "--save_steps", "3", "--eval_strategy", "no", "--cutmix_prob", "0.5",
            "--report_to", "none", "--logging_steps", "3"]


@pytest.fixture
def one_thread():
    """In-process training uses one torch thread, like the subprocesses (OMP_NUM_THREADS=1) it is compared to."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """The same 12-step run twice, uninterrupted, in this process with one thread: two output folders."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = []
        for name in ("first", "second"):
            out = tmp_path_factory.mktemp(name) / "run"
            train.main(resumable_args(out))
            runs.append(out)
        return runs
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    build_model(ModelArguments(**TINY)).save_pretrained(folder)
    return folder


def weight_difference(a, b) -> float:
    """Largest absolute difference between two saved models' tensors (0.0: bitwise equal)."""
    wa, wb = load_file(str(Path(a) / "model.safetensors")), load_file(str(Path(b) / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)


def results(folder) -> dict:
    return json.loads((Path(folder) / "all_results.json").read_text())


def eval_metrics(folder) -> dict:
    return {k: v for k, v in results(folder).items() if k.startswith("eval_") and not k.endswith(TIMINGS)}


def log_tail(path_or_text, n=3000) -> str:
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    return text[-n:]


# --- determinism, kill and resume ----------------------------------------------------------------

def test_same_config_and_seed_give_bitwise_identical_results(reference_runs):
    first, second = reference_runs
    assert eval_metrics(first) == eval_metrics(second)  # exact float equality, not a tolerance
    assert results(first)["train_loss"] == results(second)["train_loss"]
    assert weight_difference(first, second) == 0.0


def _complete_checkpoint(out: Path) -> Path | None:
    """A checkpoint-N whose trainer_state.json (Trainer writes it last) exists and parses."""
    for folder in sorted(out.glob("checkpoint-*")):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            return folder
        except (OSError, ValueError):
            continue
    return None


def test_slow_kill_and_resume_matches_uninterrupted_run(reference_runs, tmp_path, caplog, one_thread):
    out = tmp_path / "run"
    log_path = tmp_path / "killed.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *resumable_args(out)],
                                env=ENV, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while (first := _complete_checkpoint(out)) is None:
                assert proc.poll() is None, f"train.py ended before its first checkpoint:\n{log_tail(log_path)}"
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.02)
            assert proc.poll() is None, "train.py finished before it could be killed"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "all_results.json").exists()  # killed mid-run, not after it

    resume_state = json.loads((Path(last_complete_checkpoint(str(out))) / "trainer_state.json").read_text())
    killed_part = resume_state["stateful_callbacks"]["TrainingClock"]["attributes"]["before"]
    assert killed_part > 0
    # The restart runs the same command's main() in this process (a second interpreter would only add
    # ~30 s of imports); `python scripts/train.py ... --resume_from_checkpoint` gives the same result.
    with caplog.at_level(logging.INFO, logger="fer_hf.train"):
        train.main(resumable_args(out) + ["--resume_from_checkpoint"])
    resumed_from = re.search(r"Resuming from \S*checkpoint-(\d+)", caplog.text)
    assert resumed_from and int(first.name.split("-")[1]) <= int(resumed_from.group(1)) < 12, caplog.text[-2000:]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 12
    # Bitwise: the sampler stream (seed, epoch), optimizer, scheduler, CutMix draws and augmentation are all
    # replayed from the checkpoint, so the resumed run ends exactly where the uninterrupted one does.
    difference = weight_difference(out, reference_runs[0])
    assert difference == 0.0, f"resumed weights differ from the uninterrupted run's by up to {difference:.3g}"
    assert eval_metrics(out) == eval_metrics(reference_runs[0])
    # the run's training time covers both parts: the killed one's, up to the checkpoint resumed from, too
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_runtime_total"] == pytest.approx(killed_part + results["train_runtime"], abs=2.0)


def test_half_written_checkpoints_are_skipped_with_a_message(reference_runs, tmp_path, caplog):
    out = tmp_path / "run"
    good = out / "checkpoint-12"
    shutil.copytree(reference_runs[0] / "checkpoint-12", good)
    (out / "checkpoint-18").mkdir()  # killed right after the save began: config.json only
    (out / "checkpoint-18" / "config.json").write_text("{}")
    torn = out / "checkpoint-15"  # killed while trainer_state.json was being written
    shutil.copytree(good, torn)
    state = (torn / "trainer_state.json").read_text()
    (torn / "trainer_state.json").write_text(state[: len(state) // 2])
    with caplog.at_level(logging.WARNING, logger="fer_hf.training.trainer"):
        assert last_complete_checkpoint(str(out)) == str(good)
        args = FerTrainingArguments(output_dir=str(out), resume_from_checkpoint="last", report_to="none")
        assert train.resume_point(args) == str(good)
    assert "incomplete checkpoint" in caplog.text
    assert "checkpoint-18" in caplog.text and "checkpoint-15" in caplog.text


# --- several processes ---------------------------------------------------------------------------

def shard_streams(labels: np.ndarray, processes: int, epoch: int, batch_size: int = 4) -> list[list[list[int]]]:
    """Index batches each process draws from the trainer's sampler, sharded as Accelerate shards it."""
    from accelerate.data_loader import prepare_data_loader

    streams = []
    for index in range(processes):
        sampler = EpochWeightedSampler(torch.as_tensor(class_weights(labels)), len(labels), seed=42)
        loader = DataLoader(list(range(len(labels))), batch_size=batch_size, sampler=sampler)
        loader = prepare_data_loader(loader, num_processes=processes, process_index=index, put_on_device=False)
        loader.set_epoch(epoch)  # what Trainer calls each epoch; it must reach the sampler through the shards
        streams.append([batch.tolist() for batch in loader])
    return streams


def test_ema_weights_are_the_model_and_resume_exactly(reference_runs, tmp_path, one_thread):
    """ema_decay: the saved model is the average (not the raw weights), and a run resumed from a checkpoint keeps
    averaging from the saved average, ending bitwise where the uninterrupted run ends."""
    import shutil

    whole = tmp_path / "whole"
    train.main(resumable_args(whole) + ["--ema_decay", "0.9", "--save_total_limit", "10"])
    assert (whole / "checkpoint-6" / "ema.safetensors").is_file()
    assert weight_difference(whole, reference_runs[0]) > 0  # the average, not the last raw weights
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-6", resumed / "checkpoint-6")
    train.main(resumable_args(resumed) + ["--ema_decay", "0.9", "--save_total_limit", "10"])
    assert weight_difference(resumed, whole) == 0.0
    assert eval_metrics(resumed) == eval_metrics(whole)


def test_a_callback_new_on_resume_gets_its_checkpoint_state(tmp_path, one_thread):
    """A resumed run may add a stateful callback its checkpoint lacks (early stopping added on the resume):
    transformers indexes every such callback's saved state at each save, which raised KeyError before FerTrainer
    gave it its key."""
    out = tmp_path / "run"
    train.main(resumable_args(out) + ["--max_steps", "3"])
    saved = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["stateful_callbacks"]
    assert "EarlyStoppingCallback" not in saved
    train.main(resumable_args(out) + ["--eval_strategy", "steps", "--eval_steps", "3", "--early_stopping_patience", "100",
                                      "--metric_for_best_model", "accuracy"])
    last = json.loads((out / "checkpoint-12" / "trainer_state.json").read_text())
    assert last["global_step"] == 12
    assert "EarlyStoppingCallback" in last["stateful_callbacks"]


@pytest.mark.parametrize("epoch", [0, 1])
def test_weighted_sampler_shards_interleave_to_the_single_process_stream(epoch):
    labels = np.repeat(np.arange(7), [14, 2, 8, 12, 6, 4, 2])  # 48 images, 12 batches of 4, unbalanced
    [single] = shard_streams(labels, 1, epoch)
    first, second = shard_streams(labels, 2, epoch)
    assert len(first) == len(second) == 6
    assert [batch for pair in zip(first, second) for batch in pair] == single  # disjoint shares, nothing lost
    assert single != shard_streams(labels, 1, 1 - epoch)[0]  # a new stream each epoch


def test_weighted_sampler_shards_pad_an_uneven_last_batch_from_the_start():
    labels = np.arange(50) % 7  # 13 batches: the second process gets the stream's first indices again
    [single] = shard_streams(labels, 1, 0)
    first, second = shard_streams(labels, 2, 0)
    drawn = [i for pair in zip(first, second) for batch in pair for i in batch]
    flat = [i for batch in single for i in batch]
    assert len(first) == len(second) == 7 and drawn[:50] == flat and drawn[50:] == flat[: len(drawn) - 50]


def test_slow_ddp_two_cpu_processes(tmp_path, parquet_folder):
    out = tmp_path / "ddp"
    # The command: `accelerate launch --cpu --num_processes 2` alone starts ONE process (Accelerate wants
    # MPI for that); scripts/train.py (fer_hf/training/launch.py) sees it and starts the two with torch's launcher.
    command = [shutil.which("accelerate") or "accelerate", "launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(ROOT / "scripts" / "train.py"), QUICKSTART,
               "--datasets", str(parquet_folder), "--output_dir", str(out), *TINY_MODEL,
               "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--max_steps", "4",
               "--eval_strategy", "no", "--logging_steps", "1", "--ddp_find_unused_parameters", "false"]
    run = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=400, check=False)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log_tail(log)
    assert "Total train batch size (w. parallel, distributed & accumulation) = 8" in log  # 2 processes x 4
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["epoch"] == 1.0  # 28 images / (2 x 4) = 4 steps an epoch
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in (out / "checkpoint-4").iterdir()}
    # only the main process writes results and logs: one results file, one TensorBoard writer (one pid)
    assert sorted(p.name for p in out.glob("*results.json")) == ["all_results.json", "eval_results.json",
                                                                 "train_results.json"]
    assert log.count("Validation (14 images") == 1
    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert events and len({p.name.split(".")[-2] for p in events}) == 1 and len({p.parent for p in events}) == 1
    # evaluation is gathered across processes: all 14 validation images are counted, none twice
    metrics = results(out)
    assert metrics["eval_samples"] == 14 and sum(metrics[f"eval_support_{c}"] for c in CLASSES) == 14
    assert metrics["eval_ferlike_n_images"] == 14 and metrics["train_samples"] == 28


# --- bad input, everywhere -----------------------------------------------------------------------

# file -> what its message must say (case-insensitive), whichever entry point reads it
BAD = {
    "zero.jpg": r"zero\.jpg.*(empty|cannot identify|not an image file)",
    "truncated.jpg": r"truncated\.jpg.*truncated",
    "text.jpg": r"text\.jpg.*(cannot identify|not an image file)",
    "bomb.png": r"bomb\.png.*(decompression bomb|megapixels)",
    "dot.png": r"dot\.png.*too small",
}
ODD = ("16bit.png", "cmyk.jpg", "rgba.png", "palette.png", "animated.gif", "exif.jpg")  # handled, with a result
FACE_SIZE = (48, 64)  # width, height of every odd file as it should be seen (EXIF applied)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """One folder with every kind of bad and odd image file, and the plain `good.png` they are compared to."""
    folder = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(3)
    face = Image.fromarray(rng.integers(0, 256, (FACE_SIZE[1], FACE_SIZE[0], 3), dtype=np.uint8))
    face.save(folder / "good.png")
    jpeg = io.BytesIO()
    face.save(jpeg, format="JPEG")
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "text.jpg").write_text("this is a text file with a .jpg name\n")
    (folder / "bomb.png").write_bytes(png_claiming(30_000, 30_000))  # 900 megapixels claimed in 69 bytes
    Image.new("RGB", (1, 1), "white").save(folder / "dot.png")
    Image.fromarray(np.asarray(face.convert("L"), dtype=np.uint16) * 257).save(folder / "16bit.png")
    face.convert("CMYK").save(folder / "cmyk.jpg")
    face.convert("RGBA").save(folder / "rgba.png")
    face.convert("P", palette=Image.ADAPTIVE, colors=32).save(folder / "palette.png")
    face.save(folder / "animated.gif", save_all=True, append_images=[face.transpose(Image.FLIP_LEFT_RIGHT)],
              duration=100, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side; "rotate 90 degrees clockwise to display"
    face.transpose(Image.ROTATE_90).save(folder / "exif.jpg", exif=exif, quality=95)
    assert Image.open(folder / "16bit.png").mode.startswith("I") and Image.open(folder / "cmyk.jpg").mode == "CMYK"
    return folder


def test_predict_cli_reports_each_bad_file_and_goes_on(sweep, tiny_model_dir, tmp_path, one_thread):
    out = tmp_path / "preds.jsonl"
    records = predict.main([str(sweep), "--model", str(tiny_model_dir), "--detector", "haar", "--output", str(out)])
    by_file = {Path(r["file"]).name: r for r in records}
    assert set(by_file) == {"good.png", *BAD, *ODD} and len(records) == len(by_file)
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    for name, message in BAD.items():
        assert "emotion" not in by_file[name]
        assert re.search(f"(?is){message}", by_file[name]["error"]), by_file[name]["error"]
    for name in ODD:
        record = by_file[name]
        assert "error" not in record and record["emotion"] in CLASSES, record
        assert abs(sum(record["scores"].values()) - 1) < 1e-5
        assert record["box"] == [0, 0, *FACE_SIZE], name  # whole image (no face in noise), upright
    good = by_file["good.png"]["scores"]
    assert np.allclose(list(by_file["rgba.png"]["scores"].values()), list(good.values()), atol=1e-6)  # opaque RGBA


def test_space_answers_every_bad_upload_and_keeps_serving(space, client, sweep):  # noqa: F811
    from gradio_client.exceptions import AppError

    for name, message in BAD.items():
        with pytest.raises((AppError, ValueError), match=f"(?is){message}"):
            call(client, sweep / name)
    good = call(client, sweep / "good.png", cropped=True)
    for name in ODD:
        result = call(client, sweep / name, cropped=True)
        assert result["emotion"] in CLASSES and result["faces"][0]["box"] == [0, 0, *FACE_SIZE], name
    assert "first frame" in call(client, sweep / "animated.gif", cropped=True)["note"]
    rgba = call(client, sweep / "rgba.png", cropped=True)["faces"][0]["scores"]
    assert np.allclose(list(rgba.values()), list(good["faces"][0]["scores"].values()), atol=1e-6)
    assert call(client, sweep / "good.png", cropped=True) == good  # still serving, and the same answer


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_arrays_are_refused(tiny_model_dir, value):
    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir, detector=None)
    image = np.full((48, 48, 3), 0.5, np.float32)
    image[10, 10, 1] = value
    with pytest.raises(BadImageError, match=r"<array \(48, 48, 3\) float32> is not a usable image: .*NaN or inf"):
        recognizer.recognize(image)
    image[10, 10, 1] = 0.5
    [face] = recognizer.recognize(image)  # the same recognizer, next call: fine
    assert face.emotion in CLASSES


def build_imagefolder(root: Path, sweep: Path) -> None:
    """Class folders (the datasets' own alias names) of good images, with the sweep's files mixed in."""
    rng = np.random.default_rng(4)
    names = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(3):
            random_image(rng, 40).save(root / name / f"{i}.png")
    for i, file in enumerate(sorted([*BAD, *ODD])):
        shutil.copy(sweep / file, root / names[i % len(names)] / file)


def test_bad_images_in_an_imagefolder_are_skipped_and_counted(sweep, tmp_path, one_thread):
    root = tmp_path / "faces"
    build_imagefolder(root, sweep)
    data = build_datasets(DataArguments(datasets=[str(root)]), seed=42)
    transform, seen = FerTransform(32, train=True), {}
    for split, ds in data.items():
        raw = ds.with_format(None)
        rows = transform({"image": raw["image"], "label": raw["label"]})["pixel_values"]
        seen[split] = {Path(image["path"]).relative_to(root): row for image, row in zip(raw["image"], rows)}
        assert all(row is None or row.shape == (3, 32, 32) for row in rows)
    unreadable = {path.name for split in seen.values() for path, row in split.items() if row is None}
    assert unreadable == set(BAD)  # and the odd ones (CMYK, 16-bit, GIF, ...) are decoded
    train_rows = [{"pixel_values": row, "labels": 0} for row in seen["train"].values()]
    collator = FerCollator([0.5] * 3, [0.5] * 3, 32)
    batch = collator(train_rows)
    bad_in_train = sum(row is None for row in seen["train"].values())
    assert collator.skipped == bad_in_train and len(batch["labels"]) == len(train_rows) - bad_in_train
    # one epoch in one batch without replacement: training meets every bad image once, skips and counts it
    result = train.main([QUICKSTART, "--datasets", str(root), "--output_dir", str(tmp_path / "run"), *TINY_MODEL,
                         "--class_balanced_sampling", "false", "--per_device_train_batch_size", "64",
                         "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none"])
    assert result["skipped_images"] == bad_in_train and result["train_samples"] == len(train_rows)


def _parquet_dataset(folder: Path, splits: dict[str, list[str]], names: list[str]) -> None:
    """A Hub-layout parquet dataset whose splits hold one small image per label name given."""
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=names)})
    (folder / "data").mkdir(parents=True)
    rng = np.random.default_rng(5)
    for split, labels in splits.items():
        ds = Dataset.from_dict({"image": [random_image(rng, 40) for _ in labels],
                                "label": [names.index(n) for n in labels]}, features=features)
        ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))


def test_dataset_structure_problems_get_clear_errors(tmp_path):
    rng = np.random.default_rng(6)
    flat = tmp_path / "flat"  # images but no class folders: no label column
    flat.mkdir()
    for i in range(4):
        random_image(rng, 40).save(flat / f"{i}.png")
    with pytest.raises(ValueError, match=r"flat: no label column .*columns are \['image'\]"):
        build_datasets(DataArguments(datasets=[str(flat)]))

    moods = tmp_path / "moods"  # a class no alias maps to an emotion
    for name in ("happy", "bored"):
        (moods / name).mkdir(parents=True)
        for i in range(3):
            random_image(rng, 40).save(moods / name / f"{i}.png")
    with pytest.raises(ValueError, match=r"\['bored'\] are not emotions we know.*Rename the class folders"):
        build_datasets(DataArguments(datasets=[str(moods)]))

    only_contempt = tmp_path / "only_contempt"  # a validation split that harmonisation empties
    _parquet_dataset(only_contempt, {"train": ["happy", "angry", "contempt"], "validation": ["contempt", "contempt"]},
                     ["angry", "happy", "contempt"])
    with pytest.raises(ValueError, match=r"the validation split is empty after harmonisation"):
        build_datasets(DataArguments(datasets=[str(only_contempt)]))

    empty_file = tmp_path / "empty_file"  # a split file with no rows at all
    _parquet_dataset(empty_file, {"train": ["happy", "angry"], "validation": []}, ["angry", "happy"])
    with pytest.raises(ValueError, match=r"empty_file.*'validation' split holds no rows"):
        build_datasets(DataArguments(datasets=[str(empty_file)]))


# --- load ------------------------------------------------------------------------------------------

def test_slow_load_test_script_against_a_tiny_space(tiny_model_dir, tmp_path):
    import psutil

    out = tmp_path / "load.json"
    result = load_test.main(["--model", str(tiny_model_dir), "--requests", "20", "--clients", "4", "--timeout", "120",
                             "--detector", "haar", "--output", str(out)])
    assert (result["completed"], result["errors"], result["not_sent"]) == (20, 0, 0), result["error_kinds"]
    latency = result["latency_ms"]
    assert result["requests_per_s"] > 0 and 0 < latency["p50"] <= latency["p95"] <= latency["max"]
    memory = result["server_rss_mb"]
    assert memory["before"] > 50 and memory["after"] > 50 and memory["peak"] >= memory["after"]
    assert json.loads(out.read_text()) == result
    children = psutil.Process().children(recursive=True)
    assert not [p for p in children if "app.py" in " ".join(p.cmdline())]  # the server was stopped


# --- safe loading ------------------------------------------------------------------------------------

def project_sources():
    """(path, Python source) for every Python file of the project, notebooks' code cells included."""
    for folder in ("fer_hf", "scripts", "benchmarks", "space", "tests", "notebooks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, path.read_text()
        for path in sorted((ROOT / folder).rglob("*.ipynb")):
            cells = json.loads(path.read_text()).get("cells", [])
            code = ["".join(c["source"]) for c in cells if c.get("cell_type") == "code"]
            lines = [line for cell in code for line in cell.splitlines() if not line.lstrip().startswith(("%", "!"))]
            yield path, "\n".join(lines)


def _dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_no_unsafe_deserialisation_in_the_project():
    offenders = []
    for path, source in project_sources():
        for node in ast.walk(ast.parse(source, str(path))):
            if not isinstance(node, ast.Call):
                continue
            name, keywords = _dotted(node.func), {k.arg: k.value for k in node.keywords}
            is_true = lambda key: isinstance(keywords.get(key), ast.Constant) and keywords[key].value is True  # noqa: B023
            where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
            if name == "torch.load" and not is_true("weights_only"):
                offenders.append(f"{where} without weights_only=True")
            if name in ("pickle.load", "pickle.loads", "joblib.load", "dill.load"):
                offenders.append(f"{where} (unpickles arbitrary code)")
            if name.endswith("load") and is_true("allow_pickle"):
                offenders.append(f"{where} with allow_pickle=True")
            if "trust_remote_code" in keywords and not (isinstance(keywords["trust_remote_code"], ast.Constant)
                                                        and keywords["trust_remote_code"].value is False):
                offenders.append(f"{where} with trust_remote_code")
    assert offenders == []


def test_a_local_timm_checkpoint_is_unpickled_weights_only(tmp_path):
    """timm loads a .pth/.bin `init_from` with torch.load(weights_only=True): a pickle that runs code is refused."""
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    state = build_model(ModelArguments(**TINY)).timm_model.state_dict()
    torch.save({**state, "payload": Payload()}, tmp_path / "timm.pth")
    with pytest.raises((RuntimeError, pickle.UnpicklingError), match=r"(?i)weights.only.*(io\.open|unsupported global)"):
        build_model(ModelArguments(**{**TINY, "init_from": str(tmp_path / "timm.pth")}))
    assert not marker.exists()


def test_trained_models_are_saved_as_safetensors(reference_runs):
    for folder in [reference_runs[0], *reference_runs[0].glob("checkpoint-*")]:
        files = {p.name for p in folder.iterdir()}
        assert "model.safetensors" in files and not files & {"pytorch_model.bin", "model.bin"}, folder
