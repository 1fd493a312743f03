"""benchmarks/make_figures.py draws the docs' pictures from results/; benchmarks/photos.py's photos hold real faces."""

import json
import shutil

import make_figures
import photos
import pytest
from conftest import ROOT, save_confident_vit
from PIL import Image


def fake_run(folder, accuracies, runtime):
    folder.mkdir()
    history = [{"eval_accuracy": a, "eval_macro_f1": a - 0.2, "epoch": i + 1.0} for i, a in enumerate(accuracies)]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history, "epoch": float(len(accuracies))}))
    (folder / "all_results.json").write_text(json.dumps({"train_runtime": runtime}))
    return folder


def test_figures_from_results(tmp_path, suite_root):
    import evaluate

    results = tmp_path / "results"
    results.mkdir()
    for name in ("peers.json", "static_space_vs_faceapi.json"):  # what the peers' harnesses measured
        shutil.copy(ROOT / "results" / name, results / name)
    model = save_confident_vit(tmp_path / "model", depth=1)
    for name in ("teacher", "student"):
        evaluate.main(["--model", str(model), "--suite", str(suite_root), "--output_dir", str(tmp_path / name),
                       "--record", name, "--results", str(results / "models.json")])
    teacher = fake_run(tmp_path / "t", [0.5, 0.7, 0.8], 600)
    student = fake_run(tmp_path / "s", [0.4, 0.6], 1200)
    out = tmp_path / "figures"
    written = make_figures.main(["--results", str(results), "--output_dir", str(out),
                                 "--runs", f"teacher={teacher}", f"student={student}"])
    assert sorted(p.name for p in written) == ["confusion.png", "curves.png", "recall.png", "speed.png"]
    curves = json.loads((results / "curves.json").read_text())
    assert curves["runs"]["teacher"]["minutes_per_epoch"] == pytest.approx(600 / 60 / 3)
    assert [p["accuracy"] for p in curves["runs"]["student"]["points"]] == [0.4, 0.6]
    for path in written:
        assert Image.open(path).size[0] >= 800
    with pytest.raises(SystemExit):  # an entry results/models.json does not hold
        make_figures.main(["--results", str(results), "--output_dir", str(out), "--served", "nobody"])


@pytest.mark.skipif(not (ROOT / "results" / "models.json").exists(), reason="no models recorded in results/ yet")
def test_the_committed_results_draw(tmp_path):
    """The one command regenerates every picture the docs show from what results/ holds now."""
    written = make_figures.main(["--output_dir", str(tmp_path)])
    assert len(written) == 4


def test_example_photos_hold_the_faces_they_show():
    from fer_hf.inference.faces import YuNetDetector

    pytest.importorskip("skimage")
    detector = YuNetDetector()
    assert len(detector.detect(photos.astronaut())) == 1
    assert len(detector.detect(photos.astronaut_group())) == len(photos.GROUP_WIDTHS)
    committed = sorted(p.name for p in (ROOT / "space" / "examples").glob("*.jpg"))
    assert committed == ["astronaut.jpg", "group.jpg"]  # the Space's examples: photos.write_examples
