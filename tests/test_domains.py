"""The quality suite (fer_hf.evaluation.suite) on tiny imagefolders: the table and train.py's report (evaluate.py --suite:
tests/test_evaluate.py)."""

import json

import numpy as np
import pytest
from conftest import TINY_MODEL, save_confident_vit

from fer_hf.evaluation.suite import SUITE, flat_metrics, format_suite, score_suite, set_metrics, suite_sets


def test_set_metrics_recall_covers_the_classes_a_set_holds():
    labels = np.array([0, 0, 1, 3])
    probs = np.eye(7)[[0, 1, 1, 4]]
    m = set_metrics(labels, probs)
    assert m["accuracy"] == 0.5 and set(m["recall"]) == {"anger", "disgust", "happiness"}
    assert m["recall"] == {"anger": 0.5, "disgust": 1.0, "happiness": 0.0}
    assert m["macro_f1"] == pytest.approx(np.mean([2 / 3, 2 / 3, 0.0]))  # over the three present classes


def test_suite_scores_every_set_and_says_which_are_missing(tmp_path, suite_root, caplog):
    model_dir = save_confident_vit(tmp_path / "model", depth=1)
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(str(model_dir))
    sets = suite_sets(str(suite_root))
    assert list(sets) == list(SUITE)
    results = score_suite(model, sets, batch_size=4)
    assert {k: v["n_images"] for k, v in results.items()} == {"ferplus_val": 14, "sfew_dev": 14, "ckplus_dev": 12}
    assert "neutral" not in results["ckplus_dev"]["recall"]
    table = format_suite(results)
    assert table.count("\n") == 4 and "| ckplus_dev | 12 |" in table and "—" in table.splitlines()[-1]
    flat = flat_metrics(results, "suite_")
    assert flat["suite_sfew_dev_accuracy"] == results["sfew_dev"]["accuracy"] and "suite_ckplus_dev_recall_neutral" not in flat
    # a root without the dev sets: the suite is what is there, and it says so
    assert list(suite_sets(str(suite_root / "ferplus" / ".."), ["ferplus_val"])) == ["ferplus_val"]
    assert suite_sets(str(tmp_path / "nowhere")) == {}
    assert "no folder" in caplog.text
    with pytest.raises(ValueError, match="unknown set"):
        suite_sets(str(suite_root), ["jaffe"])


def test_training_reports_the_suite_in_all_results_and_the_card(tmp_path, suite_root):
    import train

    from fer_hf.hub.model_card import build_model_card

    out = tmp_path / "run"
    train.main(["--datasets", str(suite_root / "ferplus"), *TINY_MODEL, "--max_steps", "2",
                "--per_device_train_batch_size", "4", "--report_sets", str(suite_root), "--output_dir", str(out),
                "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no"])
    results = json.loads((out / "all_results.json").read_text())
    assert {f"suite_{name}_accuracy" for name in SUITE} <= set(results)
    assert "eval_accuracy" in results  # the run's own validation is still there
    card = str(build_model_card(str(out), "me/fer"))
    assert "## Off FER+" in card and "ckplus_dev" in card.split("---")[1]  # text and model-index
