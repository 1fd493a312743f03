"""scripts/predict.py: one JSON line per face; unreadable files get an error line and the run goes on."""

import json

import predict  # scripts/ is on sys.path (conftest)
import pytest
import torch
from PIL import Image
from test_faces import TWO_FACES, detectable_scene, scene

from fer_hf.data.labels import CLASSES
from fer_hf.models.modeling import ModelArguments, build_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_model")
    tiny = ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 1}')
    build_model(tiny).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """predict.main sets torch's thread count (--threads); give the rest of the session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def photos(tmp_path):
    """Two faces, an empty scene, a broken JPEG, a text file, a face crop in a subfolder."""
    root = tmp_path / "photos"
    (root / "crops").mkdir(parents=True)
    detectable_scene("yunet").save(root / "a_two_faces.png")
    Image.new("RGB", (320, 240), (90, 120, 90)).save(root / "b_empty.jpg")
    (root / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    (root / "notes.txt").write_text("not an image, and not an image suffix: skipped by the walk")
    scene(TWO_FACES).crop((60, 120, 230, 290)).save(root / "crops" / "face.png")
    return root


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_lines_per_face_with_errors_and_no_face(model_dir, photos, tmp_path):
    out = tmp_path / "preds.jsonl"
    missing = str(tmp_path / "missing.png")
    records = predict.main(["--model", str(model_dir), "--detector", "yunet", str(photos), missing, "--output", str(out)])
    assert read_lines(out) == records
    by_file = {}
    for r in records:
        by_file.setdefault(r["file"].rsplit("/", 1)[-1], []).append(r)
    assert sorted(by_file) == ["a_two_faces.png", "b_empty.jpg", "c_broken.jpg", "face.png", "missing.png"]
    two = by_file["a_two_faces.png"]
    assert [r["face"] for r in two] == [0, 1] and all(r["faces"] == 2 for r in two)
    for r in two:
        assert len(r["box"]) == 4 and r["emotion"] in CLASSES and set(r["scores"]) == set(CLASSES)
        assert r["confidence"] == max(r["scores"].values())
    [empty] = by_file["b_empty.jpg"]
    assert empty["faces"] == 0 and "no face" in empty["note"] and empty["box"] == [0, 0, 320, 240]
    assert empty["emotion"] in CLASSES  # the whole-image prediction
    [broken] = by_file["c_broken.jpg"]
    assert "c_broken.jpg" in broken["error"] and "not a usable image" in broken["error"] and "emotion" not in broken
    assert "missing.png" in by_file["missing.png"][0]["error"]
    assert records[-1]["file"] == missing  # the run went on to the last input


def test_no_detect_and_tta_to_stdout(model_dir, photos, capsys):
    crop = str(photos / "crops" / "face.png")
    records = predict.main(["--model", str(model_dir), "--no-detect", "--tta", "flip", crop])
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == records
    [r] = records
    assert r["file"] == crop and r["box"] == [0, 0, 170, 170] and r["detection_score"] is None and r["faces"] == 1
    plain = predict.main(["--model", str(model_dir), "--no-detect", crop])[0]
    assert plain["scores"] != r["scores"]  # the mirror changed something: TTA is on


def test_without_model_the_best_trained_folder_is_used_and_named(model_dir, photos, tmp_path, monkeypatch, caplog):
    import logging
    import shutil

    caplog.set_level(logging.INFO)
    outputs = tmp_path / "outputs"
    shutil.copytree(model_dir, outputs / "quickstart")
    (outputs / "quickstart" / "class_counts.json").write_text(json.dumps(
        {"train": {"synthetic_fer": {"happiness": 5}}, "validation": {"synthetic_fer": {"happiness": 1}}}))
    monkeypatch.setenv("FER_OUTPUTS", str(outputs))
    monkeypatch.delenv("FER_MODEL", raising=False)
    [record] = predict.main([str(photos / "crops" / "face.png"), "--no-detect"])
    assert record["emotion"] in CLASSES
    assert f"Serving {outputs / 'quickstart'}" in caplog.text and "quickstart (synthetic faces) recipe" in caplog.text
    assert "not meant for photos" in caplog.text  # trained on synthetic faces only: said so
    shutil.rmtree(outputs / "quickstart")
    with pytest.raises(FileNotFoundError, match="no trained model folder found"):
        predict.main([str(photos)])
    # the YuNet file from the environment (the entry point reads FER_YUNET_PATH, the library none)
    monkeypatch.setenv("FER_YUNET_PATH", str(tmp_path / "from_env.onnx"))
    with pytest.raises(FileNotFoundError, match="from_env.onnx"):
        predict.main([str(photos), "--model", str(model_dir), "--detector", "yunet"])
