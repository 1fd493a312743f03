"""fer_hf.inference.model_info: which trained model is served when none is named, and the facts shown about it."""

import json
import logging

import pytest

from fer_hf.inference import model_info
from fer_hf.inference.model_info import describe, find_best_model, model_facts, resolve_model
from fer_hf.inference.options import ServeOptions


def fake_run(folder, accuracy=None, sources=("ferplus",), weights=True, architecture="vit_tiny_patch16_224"):
    """The files a finished training run leaves (config.json, weights, class_counts.json, all_results.json)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architecture": architecture, "id2label": {}}))
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    counts = {"train": {s: {"happiness": 30, "neutral": 10} for s in sources},
              "validation": {s: {"happiness": 3, "neutral": 2} for s in sources}}
    (folder / "class_counts.json").write_text(json.dumps(counts))
    if accuracy is not None:
        (folder / "all_results.json").write_text(json.dumps({"eval_accuracy": accuracy, "eval_macro_f1": 0.4}))
    return folder


@pytest.fixture
def outputs(tmp_path):
    """Where the tests' runs go; the library looks there when the entry point passes it (FER_OUTPUTS)."""
    return tmp_path / "outputs"


def test_recipe_order_ferplus_then_fer2013_then_quickstart(outputs):
    assert find_best_model([str(outputs)]) is None
    fake_run(outputs / "quickstart", 0.92, sources=("synthetic_fer",))
    assert find_best_model([str(outputs)])[0] == str(outputs / "quickstart")
    fake_run(outputs / "fer2013_cpu", 0.43, sources=("fer2013",))
    assert find_best_model([str(outputs)])[0] == str(outputs / "fer2013_cpu")  # real faces beat a higher synthetic score
    fake_run(outputs / "ferplus_teacher_cpu", weights=False)  # still training: checkpoints, no weights yet
    assert find_best_model([str(outputs)])[0] == str(outputs / "fer2013_cpu")
    (outputs / "ferplus_teacher_cpu" / "model.safetensors").write_bytes(b"")
    assert find_best_model([str(outputs)])[0] == str(outputs / "ferplus_teacher_cpu")


def test_within_ferplus_the_higher_validation_accuracy_wins_student_on_a_tie(outputs):
    fake_run(outputs / "ferplus_teacher_cpu", 0.70, architecture="resnet18")
    fake_run(outputs / "ferplus_vit_tiny_cpu", 0.66)
    path, why = find_best_model([str(outputs)])
    assert path == str(outputs / "ferplus_teacher_cpu") and "FER+" in why and "ferplus_vit_tiny_cpu" in why
    (outputs / "ferplus_vit_tiny_cpu" / "all_results.json").write_text(json.dumps({"eval_accuracy": 0.70}))
    assert find_best_model([str(outputs)])[0] == str(outputs / "ferplus_vit_tiny_cpu")


def test_resolve_logs_the_choice_and_explains_when_nothing_is_trained(outputs, monkeypatch, caplog):
    with pytest.raises(FileNotFoundError, match="no trained model folder found.*scripts/train.py"):
        resolve_model(None, [str(outputs)])
    fake_run(outputs / "fer2013_cpu", 0.43, sources=("fer2013",))
    with caplog.at_level(logging.INFO, logger="fer_hf.inference.model_info"):
        assert resolve_model(None, [str(outputs)]) == str(outputs / "fer2013_cpu")
    assert "fer2013_cpu" in caplog.text and "FER2013 recipe" in caplog.text
    assert resolve_model("elsewhere") == "elsewhere"
    env = ServeOptions.from_environ({"FER_MODEL": "from_env", "FER_OUTPUTS": str(outputs)})
    assert resolve_model(env.model, env.roots) == "from_env"
    env = ServeOptions.from_environ({"FER_OUTPUTS": str(outputs)})
    assert env.roots == [str(outputs)] and resolve_model(env.model, env.roots) == str(outputs / "fer2013_cpu")
    with pytest.raises(ValueError, match="FER_DETECT_MAX_SIDE"):
        ServeOptions.from_environ({"FER_DETECT_MAX_SIDE": "big"})
    assert ServeOptions.from_environ({"FER_DETECT_MAX_SIDE": "960"}).detection == {"max_side": 960}


def test_facts_come_from_the_folder_and_warn_for_synthetic_only(outputs):
    real = model_facts(str(fake_run(outputs / "fer2013_cpu", 0.4329, sources=("fer2013",))), "torch")
    assert real == {"name": "fer2013_cpu", "backend": "torch",
                    "architecture": "vit_tiny_patch16_224", "trained_on": ["fer2013"], "training_images": 40,
                    "synthetic_only": False, "validation_accuracy": 0.4329, "validation_macro_f1": 0.4,
                    "validation_images": 5, "warning": None}
    assert describe(real) == ("fer2013_cpu (vit_tiny_patch16_224); trained on fer2013 (40 images); "
                              "validation accuracy 43.3% on 5 held-out images")
    toy = model_facts(str(fake_run(outputs / "quickstart", sources=("synthetic_fer", "synthetic_raf"))))
    assert toy["synthetic_only"] and toy["warning"] == model_info.SYNTHETIC_WARNING
    assert toy["validation_accuracy"] is None and "validation accuracy not recorded" in describe(toy)
    hub = model_facts("someone/fer-model")  # nothing local to read: nothing claimed
    assert hub["name"] == "fer-model" and hub["trained_on"] is None and hub["warning"] is None
