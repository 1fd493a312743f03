"""benchmarks/benchmark_detection.py on a couple of photos: exact ground truth, matching, and the printed figures."""

import json

import pytest

pytest.importorskip("skimage")

import benchmark_detection as bench


def test_photos_hold_the_faces_they_claim():
    photos = bench.make_photos(3, 1, seed=3)
    assert [p["image"].shape for p in photos] == [(480, 640, 3), (480, 640, 3), (720, 1280, 3), (480, 640, 3)]
    assert photos[-1]["faces"] == [] and all(1 <= len(p["faces"]) <= 5 for p in photos[:3])
    for photo in photos[:3]:
        for face in photo["faces"]:
            x, y, w, h = face["box"]
            assert 38 <= w <= 165 and face["tilt"] <= 30
            assert 0 <= x and x + w <= photo["image"].shape[1] and 0 <= y and y + h <= photo["image"].shape[0]
    assert [f["box"] for f in bench.make_photos(3, 1, seed=3)[2]["faces"]] == [f["box"] for f in photos[2]["faces"]]


def test_matching_counts_hits_and_false_faces():
    truth = [{"box": (100, 100, 50, 60)}, {"box": (300, 100, 50, 60)}]
    assert bench.match([(105, 102, 50, 58), (500, 400, 40, 40)], truth) == ([True, False], 1)
    assert bench.match([(100, 100, 50, 60), (101, 100, 50, 60)], truth[:1]) == ([True], 1)  # a duplicate is false
    assert bench.match([], truth) == ([False, False], 0)


def test_script_reports_both_detectors(tmp_path, capsys):
    out = tmp_path / "det.json"
    result = bench.main(["--photos", "2", "--empty", "1", "--output", str(out)])
    assert json.loads(out.read_text()) == result and result["photos"] == 3
    for name in ("yunet", "haar"):
        r = result["detectors"][name]
        assert r["faces"] == result["faces"] > 0 and 0 <= r["recall"] <= 1 and r["false_faces"] >= 0
        assert r["ms_p50_640x480"] > 0 and set(r["targets_met"]) == {"recall", "false_per_photo", "ms_p50_640x480"}
    assert result["detectors"]["yunet"]["settings"]["model"] == "face_detection_yunet_2023mar.onnx"
    printed = capsys.readouterr().out
    assert "yunet recall" in printed and "haar  recall" in printed and "target >= 95%" in printed
