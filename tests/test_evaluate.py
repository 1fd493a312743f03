"""scripts/evaluate.py and fer_hf.evaluation/callbacks: outputs, consistency, TTA, temperature, bad input."""

import csv
import hashlib
import io
import json
import shutil
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, random_image, save_confident_vit
from PIL import Image as PILImage

from fer_hf.data.labels import CLASSES
from fer_hf.evaluation import scoring as ev
from fer_hf.evaluation.suite import SUITE
from fer_hf.models.modeling import TEMPERATURE_KEY, ModelArguments, build_model
from fer_hf.utils.offline import HubUnreachableError

torch.set_num_threads(1)


def _load_script():
    """scripts/evaluate.py under its own module name: `import evaluate` could be Hugging Face's package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "scripts" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


evaluate = _load_script()
OUTPUTS = ["metrics.json", "report.md", "confusion_matrix.png", "reliability.png", "predictions.csv"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_confident_vit(tmp_path_factory.mktemp("model"), depth=1)


@pytest.fixture
def six_class_folder(tmp_path):
    """CK+-style: no neutral, class folders named with aliases and odd case."""
    rng = np.random.default_rng(5)
    root = tmp_path / "ckplus"
    for name in ["Angry", "disgusted", "fearful", "happy", "sad", "Surprised"]:
        (root / name).mkdir(parents=True)
        for i in range(3):
            random_image(rng, 36).save(root / name / f"{i}.png")
    return root


def run(model, data, out, *extra):
    return evaluate.main(["--model", str(model), "--datasets", str(data), "--output_dir", str(out),
                          "--batch_size", "8", *extra])


def read_rows(out):
    with open(out / "predictions.csv") as f:
        return list(csv.DictReader(f))


def scores(rows):
    return np.array([[float(r[f"score_{c}"]) for c in CLASSES] for r in rows])


def test_outputs_are_consistent_and_bad_image_is_counted(model_dir, imagefolder, tmp_path):
    out = tmp_path / "eval"
    result = run(model_dir, imagefolder, out, "--split", "train")
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 28 and metrics["n_skipped"] == 1 and result["n_skipped"] == 1
    assert len(metrics["skipped_ids"]) == 1 and metrics["skipped_ids"][0].endswith("broken.png")
    rows = read_rows(out)
    assert len(rows) == 28 and all(r["id"].endswith(".png") and r["source"] == "imgs" for r in rows)
    correct = np.mean([r["label"] == r["prediction"] for r in rows])
    assert metrics["accuracy"] == pytest.approx(correct)
    assert np.allclose(scores(rows).sum(axis=1), 1.0, atol=1e-4)
    assert [float(r["confidence"]) for r in rows] == pytest.approx(scores(rows).max(axis=1).tolist())
    cm = np.asarray(metrics["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum(axis=1).tolist() == [metrics[f"support_{c}"] for c in CLASSES]
    assert cm.sum(axis=1).tolist() == [4] * 7  # four good images per class; the broken fifth happy one is not counted
    block = metrics["per_source"]["imgs"]
    assert block["accuracy"] == metrics["accuracy"] and block["n_skipped"] == 1 and 0 <= block["ece"] <= 1
    report = (out / "report.md").read_text()
    assert "macro avg" in report and "weighted avg" in report and "| imgs | 28 | 1 |" in report


def test_six_class_folder_keeps_a_7x7_matrix(model_dir, six_class_folder, tmp_path):
    metrics = run(model_dir, six_class_folder, tmp_path / "eval", "--split", "train")
    assert metrics["support_neutral"] == 0 and metrics["n_images"] == 18
    assert np.asarray(metrics["confusion_matrix"]).shape == (7, 7) and sum(metrics["confusion_matrix"][4]) == 0
    present = [c for c in CLASSES if c != "neutral"]
    assert metrics["macro_f1"] == pytest.approx(np.mean([metrics[f"f1_{c}"] for c in present]))


def test_missing_split_is_named(model_dir, imagefolder, parquet_folder, tmp_path):
    with pytest.raises(ValueError, match=r"only a 'train' split.*--split"):
        run(model_dir, imagefolder, tmp_path / "a")  # default split: validation
    with pytest.raises(ValueError, match=r"'test'.*\['train', 'validation'\]"):
        run(model_dir, parquet_folder, tmp_path / "b", "--split", "test")
    metrics = run(model_dir, parquet_folder, tmp_path / "c")  # the source's own validation split
    assert metrics["n_images"] == 14 and set(metrics["per_source"]) == {"ferlike"}


def test_flip_tta_changes_only_the_tta_figures(model_dir, imagefolder, tmp_path):
    mirrored = tmp_path / "mirrored"
    shutil.copytree(imagefolder, mirrored)
    for png in mirrored.rglob("[0-9].png"):
        PILImage.open(png).transpose(PILImage.Transpose.FLIP_LEFT_RIGHT).save(png)
    plain = run(model_dir, imagefolder, tmp_path / "plain", "--split", "train")
    tta = run(model_dir, imagefolder, tmp_path / "tta", "--split", "train", "--tta", "flip")
    run(model_dir, mirrored, tmp_path / "flipped", "--split", "train")
    assert "tta_flip" not in plain and tta["predictions_from"] == "tta_flip"
    for key in ["accuracy", "macro_f1", "ece", "nll", "f1_anger"]:  # the single-view figures stay put
        assert tta[key] == plain[key]
    p, q = scores(read_rows(tmp_path / "plain")), scores(read_rows(tmp_path / "tta"))
    p_mirror = scores(read_rows(tmp_path / "flipped"))
    assert not np.allclose(p, q, atol=1e-4)
    assert np.allclose(q, (p + p_mirror) / 2, atol=2e-4)  # csv uses the mean of image and mirror scores
    rows = read_rows(tmp_path / "tta")
    assert tta["tta_flip"]["accuracy"] == pytest.approx(np.mean([r["label"] == r["prediction"] for r in rows]))
    assert "Flip TTA" in (tmp_path / "tta" / "report.md").read_text()


def test_temperature_auto_is_fitted_stored_and_reused(model_dir, imagefolder, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    weights = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    plain = run(model, imagefolder, tmp_path / "plain", "--split", "train")
    fitted = run(model, imagefolder, tmp_path / "fitted", "--split", "train", "--temperature", "auto")
    cal = fitted["calibration"]
    stored = json.loads((model / "config.json").read_text())[TEMPERATURE_KEY]
    assert isinstance(stored, float) and stored == fitted["temperature"] == cal["temperature"] != 1.0
    assert cal["nll_after"] <= cal["nll_before"] and {"ece_before", "ece_after"} <= set(cal)
    assert cal["nll_before"] == pytest.approx(plain["nll"]) and cal["ece_before"] == pytest.approx(plain["ece"])
    assert fitted["accuracy"] == plain["accuracy"]
    before, after = read_rows(tmp_path / "plain"), read_rows(tmp_path / "fitted")
    assert [r["prediction"] for r in before] == [r["prediction"] for r in after]
    assert hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest() == weights
    again = run(model, imagefolder, tmp_path / "again", "--split", "train")  # no flag: the stored T is used
    assert again["temperature_from"] == "config" and again["temperature"] == stored
    assert again["nll"] == pytest.approx(cal["nll_after"])
    off = run(model, imagefolder, tmp_path / "off", "--split", "train", "--temperature", "none")
    assert off["temperature"] == 1.0 and off["nll"] == pytest.approx(plain["nll"])


def test_runs_are_reproducible(model_dir, parquet_folder, tmp_path):
    for name in ["one", "two"]:
        run(model_dir, parquet_folder, tmp_path / name, "--tta", "flip")
    for name in ["metrics.json", "predictions.csv", "report.md"]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_bad_model_inputs_fail_fast(tmp_path, parquet_folder, model_dir):
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match="local model folder"):
        run("someone/fer-model", parquet_folder, tmp_path / "a")
    assert time.monotonic() - start < 10
    with pytest.raises(FileNotFoundError, match="without config.json"):
        run(tmp_path, parquet_folder, tmp_path / "b")
    with pytest.raises(SystemExit):
        run(model_dir, parquet_folder, tmp_path / "c", "--temperature", "-2")


def test_calibration_helpers():
    labels = np.array([0, 1, 2, 3] * 25)
    logits = np.eye(7)[labels] * 6.0  # right and over-confident...
    logits[::4] = np.eye(7)[(labels[::4] + 1) % 7] * 6.0  # ...except a quarter, confidently wrong
    t = ev.fit_temperature(logits, labels)
    assert t > 1.0  # over-confidence is cooled
    assert ev.nll(ev.softmax(logits, t), labels) < ev.nll(ev.softmax(logits), labels)
    assert ev.expected_calibration_error(ev.softmax(logits, t), labels) < ev.expected_calibration_error(ev.softmax(logits), labels)
    perfect = np.eye(7)[labels]
    assert ev.expected_calibration_error(perfect, labels) == 0.0


@pytest.mark.parametrize("report_to", ["tensorboard", "none"])
def test_trainer_logs_confusion_matrix_and_per_source_metrics(parquet_folder, tmp_path, report_to):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fer_hf.data.sources import DataArguments, build_datasets
    from fer_hf.data.transforms import FerCollator, FerTransform
    from fer_hf.evaluation.metrics import compute_metrics
    from fer_hf.models.modeling import preprocessing_config
    from fer_hf.training.callbacks import ConfusionMatrixCallback, per_source_eval_metrics
    from fer_hf.training.trainer import FerTrainer, FerTrainingArguments

    model = build_model(ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 1}'))
    data = build_datasets(DataArguments(datasets=[str(parquet_folder)]))
    pre = preprocessing_config(model.config)
    for split, ds in data.items():
        ds.set_transform(FerTransform(pre["image_size"], train=split == "train"))
    args = FerTrainingArguments(output_dir=str(tmp_path / "run"), max_steps=2, eval_strategy="steps", eval_steps=2,
                                per_device_train_batch_size=8, per_device_eval_batch_size=8, report_to=report_to,
                                save_strategy="no", use_cpu=True)
    trainer = FerTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                         data_collator=FerCollator(pre["mean"], pre["std"], pre["image_size"]),
                         compute_metrics=compute_metrics)
    trainer.add_callback(ConfusionMatrixCallback(trainer))
    trainer.train()
    metrics = trainer.evaluate()
    assert "eval_macro_f1" in metrics  # the wrapped compute_metrics still reports
    runs = list((tmp_path / "run" / "runs").iterdir())
    assert len(runs) == 1  # with TensorBoard on, the figure goes to the same run folder as the scalars
    events = EventAccumulator(str(runs[0]), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("eval/confusion_matrix")] == [2, 2]  # in training, then evaluate()
    per_source = per_source_eval_metrics(trainer)
    assert per_source["eval_ferlike_accuracy"] == pytest.approx(metrics["eval_accuracy"])
    assert per_source["eval_ferlike_n_images"] == 14 and "eval_ferlike_ece" in per_source


def test_pixel_identical_images_are_found_whatever_the_encoding():
    from datasets import Dataset, Image

    rng = np.random.default_rng(5)
    faces = [random_image(rng, 24) for _ in range(4)]

    def encoded(img, fmt):
        buf = io.BytesIO()
        img.save(buf, fmt)
        return {"bytes": buf.getvalue(), "path": None}

    train = Dataset.from_dict({"image": [encoded(f, "PNG") for f in faces[:3]]}).cast_column("image", Image(decode=False))
    # a BMP of train's first face (same pixels, other bytes), a new face, and an unreadable row
    test = Dataset.from_dict({"image": [encoded(faces[0], "BMP"), encoded(faces[3], "PNG"),
                                        {"bytes": b"not an image", "path": None}]}).cast_column("image", Image(decode=False))
    kept, dropped = ev.drop_duplicates_of(test, train)
    assert dropped == 1 and len(kept) == 2
    hashes = ev.pixel_hashes(kept)
    assert hashes[0] == ev.pixel_hashes(test)[1] and hashes[1] is None


def test_validation_split_uses_the_seed_and_size_training_used(model_dir, imagefolder, tmp_path):
    """--validation_split without --seed scores the share train.py held out with the seed in train_args.json."""
    folder = tmp_path / "trained"
    shutil.copytree(model_dir, folder)
    (folder / "train_args.json").write_text(json.dumps(
        {"data": {"synthetic_per_class": 3, "validation_split": 0.5}, "training": {"seed": 7}}))

    def held_out(out, *extra):
        result = run(folder, imagefolder, tmp_path / out, "--validation_split", "0.5", *extra)
        return result, sorted(r["id"] for r in read_rows(tmp_path / out))

    from_file, ids = held_out("from_file")
    assert (from_file["seed"], from_file["synthetic_per_class"]) == (7, 3)
    assert from_file["settings_from"] == {"seed": "train_args.json", "synthetic_per_class": "train_args.json"}
    explicit, same = held_out("explicit", "--seed", "7")
    assert same == ids and explicit["settings_from"]["seed"] == "argument"
    _other, different = held_out("other", "--seed", "42")
    assert different != ids and len(different) == len(ids)  # another seed: other images of the same share
    (folder / "train_args.json").unlink()
    default, _ = held_out("default")
    assert (default["seed"], default["settings_from"]["seed"]) == (42, "default")


def test_evaluate_suite_writes_one_table_and_refuses_to_fit_on_it(tmp_path, suite_root, capsys):
    model_dir = save_confident_vit(tmp_path / "model", depth=1)
    out = evaluate.main(["--model", str(model_dir), "--suite", str(suite_root), "--output_dir", str(tmp_path / "e")])
    assert set(out["sets"]) == set(SUITE)
    saved = json.loads((tmp_path / "e" / "suite.json").read_text())
    assert saved["sets"]["sfew_dev"]["accuracy"] == out["sets"]["sfew_dev"]["accuracy"]
    assert "| sfew_dev | 14 |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="measure only"):
        evaluate.main(["--model", str(model_dir), "--suite", str(suite_root), "--temperature", "auto",
                              "--output_dir", str(tmp_path / "e2")])


def test_evaluate_suite_records_its_table_in_results(tmp_path, suite_root):
    """--record NAME merges the suite (confusion matrices included) and what the model is into a results file."""
    model_dir = save_confident_vit(tmp_path / "model", depth=1)
    results = tmp_path / "results" / "models.json"
    results.parent.mkdir()
    results.write_text(json.dumps({"teacher": {"sets": {}}}))  # an entry recorded before stays
    args = ["--model", str(model_dir), "--suite", str(suite_root), "--output_dir", str(tmp_path / "e"),
            "--record", "student", "--results", str(results)]
    out = evaluate.main(args)
    saved = json.loads(results.read_text())
    assert set(saved) == {"teacher", "student"}
    entry = saved["student"]
    assert entry["sets"]["ckplus_dev"]["accuracy"] == out["sets"]["ckplus_dev"]["accuracy"]
    cm = np.asarray(entry["sets"]["ckplus_dev"]["confusion"])
    assert cm.shape == (7, 7) and cm.sum() == 12 and cm[CLASSES.index("neutral")].sum() == 0
    assert np.trace(cm) / cm.sum() == pytest.approx(entry["sets"]["ckplus_dev"]["accuracy"])
    assert entry["command"].startswith("python scripts/evaluate.py --model") and entry["cpu"]
    assert entry["training"]["architecture"] == "vit_tiny_patch16_224"
    with pytest.raises(SystemExit):  # a single split has no suite table to record
        evaluate.main(["--model", str(model_dir), "--output_dir", str(tmp_path / "x"), "--record", "student"])
