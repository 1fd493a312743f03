"""benchmarks/benchmark.py --quick: every figure and ratio is in the JSON (no timing assertions: shared CPUs)."""

import json
import math

import benchmark  # benchmarks/ is on sys.path through conftest


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_quick_benchmark_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = benchmark.main(["--quick", "--output", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))

    train = result["training"]
    run = train["runs"]["32px_fp32"]
    for key in ("img_s", "compute_img_s"):
        assert finite(run["full"][key]), key
    assert 0 <= run["full"]["data_share"] <= 1
    assert finite(run["bare"]["img_s"]) and finite(run["full_vs_bare"])
    assert run["full_vs_bare"] == run["full"]["img_s"] / run["bare"]["img_s"]
    assert len(run["rounds"]) == 1 and finite(run["rounds"][0])  # --quick: one round of full and bare
    assert "measured" in train["bf16"] or "skipped" in train["bf16"]  # measured only where native
    assert finite(train["seed_baseline"]["img_s"]) and finite(train["recipe_vs_seed"])
    assert all(finite(v) for v in train["preprocessing_img_s"].values())
    assert finite(train["peak_rss_mib"])

    inf = result["inference"]
    assert inf["backend"] == "onnx_int8"  # served as exported; eager PyTorch measured beside it
    for figures in (inf, inf["pytorch"]):
        for case in ("one_face", "eight_faces"):
            assert set(figures[case]) == {"decode", "detection", "crop", "model", "total"}
            assert all(finite(v["p50_ms"]) and v["p95_ms"] >= v["p50_ms"] for v in figures[case].values())
        assert finite(figures["eight_vs_one"])
    assert inf["faces_found"]["one_face"] == 1  # the drawn scenes are ones the detector finds
    assert set(inf["threads"]) == {"1_threads", "2_threads"}
    assert "skipped" in result["space_peak_rss_mib"]

    recipe = train["recipe"]  # our CPU recipe (fer2013_cpu.yaml), measured like the others
    assert recipe.startswith("recipe_32px_p8_") and finite(train["runs"][recipe]["full_vs_bare"])
    # a CPU with native bf16 (AVX512-BF16/AMX) also measures the bf16 run and checks its pipeline share
    bf16 = {"full_vs_bare_32px_bf16"} if "measured" in train["bf16"] else set()
    assert set(result["checks"]) == {"full_vs_bare_32px_fp32", f"full_vs_bare_{recipe}", "recipe_vs_seed",
                                     "one_face_p50_ms", "eight_vs_one"} | bf16
    for measured, target, met in result["checks"].values():
        assert finite(measured) and finite(target) and isinstance(met, bool)
