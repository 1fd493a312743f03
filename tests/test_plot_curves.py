"""scripts/plot_curves.py: validation points from trainer_state.json, a resumed run's repeat, the PNG."""

import json

import plot_curves
import pytest
from PIL import Image


def _run(folder, history):
    folder.mkdir()
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    return str(folder)


def test_points_and_figure(tmp_path):
    a = _run(tmp_path / "a", [{"loss": 1.9, "epoch": 0.5}, {"eval_accuracy": 0.5, "eval_macro_f1": 0.3, "epoch": 1.0},
                              {"eval_accuracy": 0.6, "eval_macro_f1": 0.4, "epoch": 2.0},
                              {"eval_accuracy": 0.62, "eval_macro_f1": 0.41, "epoch": 2.0}])  # evaluated again after a resume
    b = _run(tmp_path / "b", [{"eval_accuracy": 0.7, "epoch": 1.0}])
    out = tmp_path / "curves.png"
    result = plot_curves.main([a, b, "--labels", "teacher", "student", "--minutes_per_epoch", "6", "4", "--output", str(out)])
    assert result["runs"]["teacher"] == [{"epoch": 1.0, "accuracy": 0.5, "macro_f1": 0.3},
                                         {"epoch": 2.0, "accuracy": 0.62, "macro_f1": 0.41}]
    assert result["runs"]["student"][0]["macro_f1"] is None
    assert Image.open(out).size[0] > 800  # two panels


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        plot_curves.main([str(tmp_path)])
    a = _run(tmp_path / "a", [])
    with pytest.raises(SystemExit):
        plot_curves.main([a, "--labels", "x", "y"])
