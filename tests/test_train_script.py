"""scripts/train.py end to end: YAML + overrides, outputs, resume, offline failure of the seed recipe."""

import json
import time

import pytest
import train
from conftest import ROOT, TINY_MODEL
from transformers import pipeline

from fer_hf.data.labels import CLASSES
from fer_hf.hub.model_card import build_model_card
from fer_hf.utils.offline import HubUnreachableError


def quick_args(data, out, *extra):
    return [str(ROOT / "scripts/configs/quickstart.yaml"), "--datasets", str(data), "--output_dir", str(out),
            *TINY_MODEL, "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
            "--report_to", "none", "--logging_steps", "2", *extra]


def test_train_writes_model_and_results(tmp_path, parquet_folder):
    out = tmp_path / "run"
    result = train.main(quick_args(parquet_folder, out, "--max_steps", "6", "--save_steps", "3", "--eval_strategy", "no",
                                   "--grayscale", "true"))
    assert result["epoch"] > 0 and result["train_samples"] == 28
    assert json.loads((out / "config.json").read_text())["fer_pipeline"]["grayscale"] is True  # served in grey too
    results = json.loads((out / "all_results.json").read_text())
    for key in ["eval_accuracy", "eval_macro_f1", "eval_balanced_accuracy", "eval_f1_disgust", "eval_recall_neutral"]:
        assert key in results
    assert results["precision"].startswith(("bf16", "fp32", "fp16"))
    counts = json.loads((out / "class_counts.json").read_text())
    assert counts["train"]["ferlike"]["disgust"] == 4 and counts["validation"]["ferlike"]["neutral"] == 2
    scores = pipeline("image-classification", model=str(out), device="cpu")(_face(tmp_path), top_k=7)
    assert sorted(s["label"] for s in scores) == sorted(CLASSES)


def _face(tmp_path):
    from PIL import Image

    path = tmp_path / "face.png"
    Image.new("RGB", (60, 80), (200, 150, 120)).save(path)
    return str(path)


def test_resume_after_first_checkpoint(tmp_path, parquet_folder):
    out = tmp_path / "run"
    train.main(quick_args(parquet_folder, out, "--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no"))
    # a half-written later checkpoint (killed while saving) must be skipped, not crash the resume
    (out / "checkpoint-5").mkdir()
    (out / "checkpoint-5" / "config.json").write_text("{}")
    result = train.main(quick_args(parquet_folder, out, "--max_steps", "8", "--save_steps", "2",
                                   "--eval_strategy", "no", "--resume_from_checkpoint"))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    assert result["epoch"] > 0


def test_teacher_model_on_the_quickstart_recipe(tmp_path, parquet_folder):
    teacher = tmp_path / "teacher"
    train.main(quick_args(parquet_folder, teacher, "--max_steps", "2", "--eval_strategy", "no"))
    out = tmp_path / "student"
    result = train.main(quick_args(parquet_folder, out, "--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no",
                                   "--teacher_model", str(teacher), "--distillation_type", "hard"))
    assert 0 < result["teacher_share"] < 1
    recorded = json.loads((out / "train_args.json").read_text())
    assert recorded["training"]["teacher_model"] == str(teacher) and recorded["training"]["distillation_type"] == "hard"
    assert recorded["teacher"]["path"] == str(teacher.resolve())
    teacher_acc = json.loads((teacher / "all_results.json").read_text())["eval_accuracy"]
    assert recorded["teacher"]["validation"]["eval_accuracy"] == teacher_acc
    assert json.loads((out / "config.json").read_text())["fer_teacher"]["validation"]["eval_accuracy"] == teacher_acc
    card = str(build_model_card(str(out), "org/student"))
    assert f"| distillation | hard (alpha 0.5, T 1.0) from teacher `vit_tiny_patch16_224` at `{teacher.resolve()}`" in card
    assert f"its validation accuracy {teacher_acc:.4f}" in card and "| training targets | majority |" in card
    # teacher_view flip: the teacher scores each face with its flip only (the seed's turns and jitter are the
    # student's alone), so from the third epoch on (4 steps an epoch here) the cache answers nearly every row
    flip = train.main(quick_args(parquet_folder, tmp_path / "flip", "--max_steps", "16", "--eval_strategy", "no",
                                 "--save_strategy", "no", "--teacher_model", str(teacher), "--teacher_view", "flip"))
    assert flip["teacher_cache_hits"] > 0.3  # ~0.5 expected (0, 1/2, 3/4, 7/8 by epoch); turned views never repeat
    assert "the teacher scored each face with only the student's flip" in str(build_model_card(str(tmp_path / "flip"), "o/s"))
    # resuming reloads the teacher from its folder and goes on to the new end
    train.main(quick_args(parquet_folder, out, "--max_steps", "6", "--save_steps", "2", "--eval_strategy", "no",
                          "--teacher_model", str(teacher), "--resume_from_checkpoint",
                          "--restore_callback_states_from_checkpoint", "true"))
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6
    # the card states the training time of both parts (all_results.json's train_runtime is the last part's only),
    # also when transformers put a restored clock in place of train.py's
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_runtime_total"] > results["train_runtime"] > 0
    assert "training images; final training loss" in (card := str(build_model_card(str(out), "org/student")))
    assert " min." in card.split("final training loss")[1].split("\n")[0] and "trained for" in card


def test_seed_recipe_fails_fast_offline(tmp_path):
    start = time.monotonic()
    with pytest.raises(HubUnreachableError) as err:
        train.main([str(ROOT / "scripts/configs/vit_tiny_fer.yaml"), "--output_dir", str(tmp_path)])
    assert time.monotonic() - start < 10
    assert "synthetic" in str(err.value) or "init_from" in str(err.value)


def test_unknown_yaml_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        train.main([str(bad)])
