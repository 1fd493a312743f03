"""scripts/export_onnx.py and the ONNX backend of EmotionRecognizer (fer_hf/inference/onnx_backend.py), on a tiny ViT."""

import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import export_onnx

from fer_hf.data.labels import CLASSES
from fer_hf.data.synthetic import draw_face
from fer_hf.inference.onnx_backend import OnnxClassifier, onnx_file, read_metadata
from fer_hf.inference.recognizer import EmotionRecognizer
from fer_hf.models.modeling import ModelArguments, build_model, write_temperature


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model folder, export results): a tiny random ViT saved, calibrated, and exported fp32 + int8.
    Two blocks, so stochastic depth is non-zero: a network left in training mode would fail parity."""
    root = tmp_path_factory.mktemp("onnx")
    model = build_model(ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 2}'))
    model.save_pretrained(root / "model")
    write_temperature(root / "model", 1.5)
    result = export_onnx.main(["--model", str(root / "model"), "--output", str(root / "model.onnx"),
                               "--quantize", "int8", "--num_images", "42"])
    return root, result


def faces(n=6):
    rng = np.random.default_rng(3)
    return [draw_face(CLASSES[i % 7], rng, 64) for i in range(n)]


def test_export_parity_and_int8(exported):
    root, result = exported
    assert result["num_images"] == 42 and result["parity_ok"]
    assert result["fp32_max_abs_diff"] <= 1e-4 and result["fp32_agreement"] == 1.0
    assert result["sizes_mb"]["int8"] < result["sizes_mb"]["fp32"]  # the weights really are 8-bit now
    for key in ("int8_accuracy", "int8_accuracy_change", "int8_agreement", "int8_latency_ms", "int8_speedup"):
        assert np.isfinite(result[key]), key
    assert (root / "model.json").is_file()  # the results JSON next to the model


def test_metadata_is_enough_for_inference(exported):
    root, _ = exported
    for name in ("model.onnx", "model.int8.onnx"):
        meta = read_metadata(str(root / name))
        assert meta["labels"] == list(CLASSES)
        assert meta["image_size"] == 32 and len(meta["mean"]) == len(meta["std"]) == 3
        assert meta["calibration_temperature"] == 1.5


@pytest.mark.parametrize("tta", [None, "flip"])
def test_recognizer_onnx_matches_torch(exported, tta):
    root, _ = exported
    torch_rec = EmotionRecognizer.from_pretrained(root / "model", detector=None, tta=tta)
    onnx_rec = EmotionRecognizer.from_pretrained(str(root / "model.onnx"), detector=None, tta=tta)
    assert (torch_rec.backend, onnx_rec.backend) == ("torch", "onnx") and isinstance(onnx_rec.classifier, OnnxClassifier)
    assert type(onnx_rec) is type(torch_rec) is EmotionRecognizer  # one recognizer, two backends
    assert onnx_rec.model is None and onnx_rec.temperature == torch_rec.temperature == 1.5
    a, b = torch_rec.recognize_batch(faces(), detect=False), onnx_rec.recognize_batch(faces(), detect=False)
    assert [f[0].emotion for f in a] == [f[0].emotion for f in b]
    for fa, fb in zip(a, b):
        assert max(abs(fa[0].scores[k] - fb[0].scores[k]) for k in CLASSES) <= 1e-4


def test_int8_recognizer_runs(exported):
    root, _result = exported
    rec = EmotionRecognizer.from_pretrained(str(root / "model.int8.onnx"), detector=None)
    out = rec.recognize_batch(faces(3), detect=False)
    assert len(out) == 3 and all(f[0].emotion in CLASSES for f in out)
    assert abs(sum(out[0][0].scores.values()) - 1) < 1e-5


def test_folder_with_model_onnx(exported, tmp_path):
    root, _ = exported
    folder = tmp_path / "onnx_only"
    folder.mkdir()
    shutil.copy(root / "model.onnx", folder / "model.onnx")
    shutil.copy(root / "model" / "config.json", folder / "config.json")
    assert onnx_file(folder) == str(folder / "model.onnx")
    assert onnx_file(root / "model") is None  # a torch folder stays on the torch path
    rec = EmotionRecognizer.from_pretrained(folder, detector=None)
    assert rec.backend == "onnx" and rec.classifier.path == str(folder / "model.onnx")
    with pytest.raises(ValueError, match="CPU only"):
        EmotionRecognizer.from_pretrained(folder, detector=None, device="cuda")


def test_missing_onnx_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        EmotionRecognizer.from_pretrained(str(tmp_path / "nope.onnx"), detector=None)


def test_space_serves_an_onnx_model(exported, tmp_path):
    """FER_MODEL=x.int8.onnx: the Space's handlers answer, and the attention option says why there is no map."""
    from test_space import load_app

    app = load_app()
    root, _ = exported
    rec = EmotionRecognizer.from_pretrained(str(root / "model.int8.onnx"), detector=None)
    faces(1)[0].save(tmp_path / "face.png")
    result, state = app.analyse(rec, {"path": str(tmp_path / "face.png"), "orig_name": "face.png"}, cropped=True)
    assert result["emotion"] in CLASSES
    image, scores, message = app.render(rec, state, attention=True)
    assert image is not None and set(scores) == set(CLASSES)
    assert "ONNX" in message


def test_evaluate_scores_an_onnx_export_on_the_suite(exported, suite_root, tmp_path):
    """evaluate.py --suite takes the ONNX file (the static page's model): fp32 ONNX scores as the folder does."""
    import evaluate

    root, _ = exported
    args = ["--suite", str(suite_root), "--batch_size", "8"]
    folder = evaluate.main(["--model", str(root / "model"), *args, "--temperature", "none", "--output_dir", str(tmp_path / "a")])
    onnx = evaluate.main(["--model", str(root / "model.onnx"), *args, "--output_dir", str(tmp_path / "b")])
    for name, m in folder["sets"].items():
        assert onnx["sets"][name]["confusion"] == m["confusion"], name
    with pytest.raises(SystemExit, match="--suite"):
        evaluate.main(["--model", str(root / "model.onnx"), "--datasets", "synthetic", "--output_dir", str(tmp_path / "c")])
