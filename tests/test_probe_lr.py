"""scripts/probe_lr.py: one loss per rate, from the same batches."""

import math

import probe_lr


def test_probe_reports_a_loss_per_rate():
    out = probe_lr.main(["--data", "synthetic", "--images", "16", "--steps", "3", "--batch_size", "4", "--window", "2",
                         "--image_size", "32", "--lrs", "1e-4", "1e-3", "--model_args", '{"depth": 1}'])
    assert set(out) == {1e-4, 1e-3} and all(math.isfinite(v) and 0 < v < 5 for v in out.values())
