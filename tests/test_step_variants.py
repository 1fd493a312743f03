"""benchmarks/step_variants.py: the budget probe's step times per variant, alternating, with the teacher cache's."""

from conftest import ROOT, TINY_MODEL


def test_variants_are_timed_by_the_probe_and_compared(tmp_path, parquet_folder):
    import step_variants as bench
    import train

    teacher = tmp_path / "teacher"
    train.main([str(ROOT / "scripts/configs/quickstart.yaml"), "--datasets", str(parquet_folder), "--output_dir",
                str(teacher), *TINY_MODEL, "--max_steps", "1", "--eval_strategy", "no", "--report_to", "none"])
    extra = " ".join(["--datasets", str(parquet_folder), *TINY_MODEL[:-1],
                      "'" + TINY_MODEL[-1] + "'", "--per_device_train_batch_size", "4", "--teacher_model", str(teacher)])
    out = tmp_path / "steps.json"
    table = bench.main(["--recipe", str(ROOT / "scripts/configs/quickstart.yaml"), "--extra", extra, "--rounds", "1",
                        "--variants", "base=--teacher_cache_size,0", "flip=--teacher_view,flip", "--output", str(out)])
    assert list(table) == ["base", "flip"] and out.exists()
    assert table["base"]["step_seconds"] > 0 and table["base"]["warm_step_seconds"] is None  # no cache, no warm pass
    assert 0 < table["flip"]["warm_step_seconds"] and len(table["flip"]["rounds"]) == 1
