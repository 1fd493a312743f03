"""Fast checks of benchmarks/benchmark_static_space.py's pure helpers for the face-api.js comparison (no browser)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import benchmark_static_space as bench


def run(total, faces=2, **extra):
    return {"total_ms": total, "faces": faces, "width": 640, "height": 480, **extra}


def test_p50_summary_takes_medians_and_has_no_time_per_face_without_a_face():
    summary = bench.p50_summary([run(10), run(30), run(20)], ("total_ms",))
    assert summary == {"faces": 2, "size": [640, 480], "total_ms": 20, "ms_per_face": 10}
    assert bench.p50_summary([run(10, faces=0)], ("total_ms",))["ms_per_face"] is None


def test_ratio_is_peer_over_ours_and_none_when_undefined():
    assert bench.ratio(300, 100) == 3.0
    assert bench.ratio(None, 100) is None
    assert bench.ratio(5, None) is None
    assert bench.ratio(5, 0) is None


def test_side_by_side_rows():
    def page(total, faces, first, after, fetched):
        return {"one": {"faces": faces, "total_ms": total, "ms_per_face": total / faces if faces else None},
                "first_prediction_ms": first, "first_prediction_after_load_ms": after, "fetched_bytes": fetched}

    rows = bench.side_by_side(page(50, 1, 1000, 400, 6_500_000), page(200, 0, 2000, 1200, 2_000_000), ["one"])
    assert rows["one"]["ms_per_photo_p50"] == {"static_page": 50, "faceapi": 200, "ratio": 4.0}
    assert rows["one"]["ms_per_face"]["ratio"] is None  # face-api found no face: no time per face
    assert rows["one"]["faces"] == {"static_page": 1, "faceapi": 0}
    assert rows["first_prediction_after_load_ms"]["ratio"] == 3.0
    assert rows["fetched_mb"] == {"static_page": 6.5, "faceapi": 2.0, "ratio": 0.31}


@pytest.mark.parametrize("detector", ["ssd", "tiny"])
def test_faceapi_site_copies_only_what_the_page_needs(tmp_path, detector):
    modules = tmp_path / "node_modules"
    faceapi, wasm = modules / "@vladmandic" / "face-api", modules / "@tensorflow" / "tfjs-backend-wasm"
    for folder, version in ((faceapi, "1.7.15"), (wasm, "4.22.0")):
        folder.mkdir(parents=True)
        (folder / "package.json").write_text(json.dumps({"version": version}))
    (faceapi / "dist").mkdir()
    (faceapi / "dist" / "face-api.esm.js").write_text("export {};")
    (faceapi / "model").mkdir()
    for net in ("ssd_mobilenetv1_model", "tiny_face_detector_model", "face_expression_model", "age_gender_model"):
        for suffix in ("-weights_manifest.json", ".bin"):
            (faceapi / "model" / f"{net}{suffix}").write_text("x")
    (wasm / "dist").mkdir()
    for name in ("tfjs-backend-wasm.wasm", "tfjs-backend-wasm-simd.wasm", "index.js"):
        (wasm / "dist" / name).write_text("x")

    versions = bench.faceapi_site(modules, tmp_path / "site", detector)
    assert versions == {"@vladmandic/face-api": "1.7.15", "@tensorflow/tfjs-backend-wasm": "4.22.0"}
    files = sorted(str(p.relative_to(tmp_path / "site")) for p in (tmp_path / "site").rglob("*") if p.is_file())
    net = bench.FACEAPI_MODELS[detector]
    assert files == sorted(["index.html", "faceapi_page.mjs", "face-api.esm.js", "wasm/tfjs-backend-wasm.wasm",
                            "wasm/tfjs-backend-wasm-simd.wasm", f"model/{net}-weights_manifest.json", f"model/{net}.bin",
                            "model/face_expression_model-weights_manifest.json", "model/face_expression_model.bin"])
    assert "faceapi_page.mjs" in (tmp_path / "site" / "index.html").read_text()


def test_cpu_name_is_a_string():
    from fer_hf.utils.device import cpu_name

    assert isinstance(cpu_name(), str) and cpu_name()


def test_benchmark_photos_are_the_astronaut_unless_drawn_faces_are_asked_for():
    real, drawn = dict(bench.photo_scenes()), dict(bench.photo_scenes(drawn=True))
    assert real["one_face"].size == drawn["one_face"].size == (640, 480)
    assert real["group"].size == drawn["group"].size == (960, 640)
    assert real["one_face"].tobytes() != drawn["one_face"].tobytes()
