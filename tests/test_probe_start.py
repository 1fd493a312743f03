"""benchmarks/probe_start.py: one loss (and accuracy) per rate and patch size, from the same batches."""

import math

import probe_start


def test_probe_reports_a_loss_and_accuracy_per_setting():
    out = probe_start.main(["--data", "synthetic", "--images", "16", "--steps", "3", "--batch_size", "4", "--window", "2",
                            "--image_size", "32", "--lrs", "1e-4", "1e-3", "--patch_sizes", "8", "16",
                            "--eval_images", "10", "--model_args", '{"depth": 1}'])
    assert set(out) == {(1e-4, 8), (1e-3, 8), (1e-4, 16), (1e-3, 16)}
    for r in out.values():
        assert math.isfinite(r["loss"]) and 0 < r["loss"] < 5 and 0 <= r["accuracy"] <= 1 and r["seconds"] > 0
