"""The README is the front door: short, and its headline table says what results/ measured."""

import json
import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()
SETS = ("ferplus_val", "sfew_dev", "ckplus_dev")  # the headline table's columns, in order
PEER_ROWS = {"face-api.js": "peer: face-api.js", "fer": "peer: pip `fer`"}


def headline_row(label: str) -> list[str]:
    """The cells after the first of the headline table's row that starts with `label`."""
    for line in README.splitlines():
        if line.startswith(f"| {label}"):
            return [c.strip() for c in line.strip("|").split("|")[1:]]
    raise AssertionError(f"no headline row for {label!r}")


def test_readme_is_short():
    assert len(README.splitlines()) <= 250


def test_peer_rows_are_what_results_peers_json_measured():
    """benchmarks/peers/compare.py writes results/peers.json; the README's peer rows must say the same."""
    measured = json.loads((ROOT / "results" / "peers.json").read_text())
    for peer, label in PEER_ROWS.items():
        cells = headline_row(label)
        for cell, name in zip(cells, SETS):
            m = measured[peer][name]
            want = f"{100 * m['accuracy']:.1f}% / {m['macro_f1']:.3f}"
            assert re.sub(r"[*‡†]", "", cell) == want, (peer, name, cell, want)
