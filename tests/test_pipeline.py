"""PipelineConfig: the served pipeline's settings, written once with the model and read by the recognizer."""

import dataclasses

import pytest
from conftest import save_confident_vit
from transformers import AutoModelForImageClassification

from fer_hf.inference.faces import SERVED_FRAMING, DetectorSettings, Framing
from fer_hf.inference.pipeline import MAX_BYTES, PipelineConfig
from fer_hf.inference.recognizer import EmotionRecognizer


def test_round_trip_and_defaults_for_older_exports():
    cfg = PipelineConfig(labels=("a", "b"), image_size=48, mean=(0.5,) * 3, std=(0.25,) * 3, temperature=1.5,
                         grayscale=True, framing=Framing(scale=1.2, basis="max"), detector=DetectorSettings(max_side=640))
    d = cfg.to_dict()
    assert d["calibration_temperature"] == 1.5 and d["framing"]["scale"] == 1.2 and d["detector"]["max_side"] == 640
    assert PipelineConfig.from_dict(d) == cfg
    old = {k: d[k] for k in ("labels", "image_size", "mean", "std")}  # an export from before framing was stored
    assert PipelineConfig.from_dict(old).framing == SERVED_FRAMING and PipelineConfig.from_dict(old).max_bytes == MAX_BYTES
    assert d["grayscale"] is True and PipelineConfig.from_dict(old).grayscale is False
    assert cfg.with_detector(max_side=960, min_face=None).detector == DetectorSettings(max_side=960)
    with pytest.raises(TypeError):
        cfg.with_detector(threshold=0.2)  # a setting that does not exist is named, never ignored


def test_model_folder_carries_the_serving_settings_and_the_recognizer_uses_them(tmp_path):
    folder = save_confident_vit(tmp_path / "m", depth=1)
    model = AutoModelForImageClassification.from_pretrained(str(folder))
    default = PipelineConfig.from_model_config(model.config)
    assert default.framing == SERVED_FRAMING and default.image_size == 32 and default.temperature is None
    custom = dataclasses.replace(default, framing=Framing(scale=1.0, basis="max"), detector=DetectorSettings(max_side=320))
    model.config.fer_pipeline = custom.serving_entry()
    model.config.calibration_temperature = 2.0
    model.save_pretrained(str(folder))
    rec = EmotionRecognizer.from_pretrained(str(folder), detection={"score_threshold": 0.5})
    assert rec.framing == Framing(scale=1.0, basis="max") and rec.temperature == 2.0
    assert rec.detector.max_side == 320 and rec.detector.score_threshold == 0.5  # the folder's, then the override
    assert rec.pipeline.labels == tuple(model.config.id2label[i] for i in range(7))
    assert EmotionRecognizer.from_pretrained(str(folder), margin=0.2).framing == Framing(scale=1.4)


def test_a_grey_model_reads_a_colour_face_as_its_grey_twin_everywhere(tmp_path):
    """grayscale in the model folder: the recognizer (predict.py, the Space) and evaluation read the face in grey, so a
    colour face and its grey twin score the same; a colour model tells them apart."""
    import numpy as np
    from datasets import Dataset
    from PIL import Image

    from fer_hf.evaluation.scoring import predict_logits

    folder = save_confident_vit(tmp_path / "m", depth=1)
    model = AutoModelForImageClassification.from_pretrained(str(folder))
    rng = np.random.default_rng(0)
    colour = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))  # the model's size: no resize
    grey = colour.convert("L").convert("RGB")
    faces = Dataset.from_dict({"image": [colour, grey]})

    def scores(m):
        rec = EmotionRecognizer(m, None)
        return rec.predict_crops([colour])[0], rec.predict_crops([grey])[0], predict_logits(m, faces).logits

    c, g, logits = scores(model)
    assert not np.allclose(c, g, atol=1e-3) and not np.allclose(logits[0], logits[1], atol=1e-3)
    model.config.fer_pipeline = dataclasses.replace(PipelineConfig.from_model_config(model.config),
                                                    grayscale=True).serving_entry()
    model.save_pretrained(str(folder))
    model = AutoModelForImageClassification.from_pretrained(str(folder))
    assert PipelineConfig.from_model_config(model.config).grayscale
    c, g, logits = scores(model)
    np.testing.assert_allclose(c, g, atol=1e-6)
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-5)
