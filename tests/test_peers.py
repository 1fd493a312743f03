"""benchmarks/peers/compare.py: peer labels by name, fer's input, the metrics path, the registry skip (all offline).

The one test that runs the peers themselves needs them installed in the default cache (a full compare.py run puts
them there) and the CK+ dev faces; it skips, saying which, when either is missing.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from fer_hf.data.labels import CLASSES, label_mapping

ROOT = Path(__file__).resolve().parents[1]
# loaded by path: benchmarks/peers is a folder of scripts, not a package
_spec = importlib.util.spec_from_file_location("peers_compare", ROOT / "benchmarks" / "peers" / "compare.py")
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)

FACEAPI_LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]  # FaceExpressions.ts
FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer.FER._get_labels
FER_SOURCE = '''
class FER:
    @staticmethod
    def _get_labels():
        return {0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}
'''


@pytest.mark.parametrize("names", [FACEAPI_LABELS, FER_LABELS])
def test_peer_labels_map_by_name_onto_the_seven(names):
    mapping = label_mapping(names, "peer")
    assert sorted(mapping.tolist()) == list(range(len(CLASSES)))
    # each peer column lands on the class of its name, whatever the peer's order
    probs = np.eye(len(names))
    moved = compare.canonical_probs(probs, names, "peer")
    expected = {"neutral": "neutral", "happy": "happiness", "sad": "sadness", "angry": "anger", "fearful": "fear",
                "disgusted": "disgust", "surprised": "surprise", "disgust": "disgust", "fear": "fear",
                "surprise": "surprise"}
    for j, name in enumerate(names):
        assert CLASSES[int(moved[j].argmax())] == expected[name]
    assert np.allclose(moved.sum(axis=1), 1)


def test_canonical_probs_refuses_labels_that_are_not_the_seven():
    with pytest.raises(ValueError, match="one to one"):
        compare.canonical_probs(np.eye(7), ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"], "x")
    with pytest.raises(ValueError, match="one to one"):
        compare.canonical_probs(np.eye(7), ["angry", "angry", "fear", "happy", "sad", "surprise", "neutral"], "x")


def test_fer_labels_read_from_its_source():
    assert compare.fer_labels(FER_SOURCE) == FER_LABELS
    with pytest.raises(ValueError, match="_get_labels"):
        compare.fer_labels("def other():\n    return {}\n")


def test_fer_input_is_grey_64px_in_minus_one_to_one():
    rng = np.random.default_rng(0)
    x = compare.fer_input(rng.integers(0, 256, (143, 181, 3), dtype=np.uint8))  # SFEW's non-square shape
    assert x.shape == (1, 64, 64, 1) and x.dtype == np.float32
    assert -1 <= x.min() and x.max() <= 1
    # flat images: black -> -1, white -> 1, and an RGB colour through the BT.601 grey weights cv2 uses
    assert np.allclose(compare.fer_input(np.zeros((48, 48, 3), np.uint8)), -1)
    assert np.allclose(compare.fer_input(np.full((48, 48, 3), 255, np.uint8)), 1)
    red = np.zeros((48, 48, 3), np.uint8)
    red[..., 0] = 255
    assert np.allclose(compare.fer_input(red), (76 / 255 - 0.5) * 2)  # round(0.299 * 255) = 76
    # a horizontal ramp keeps its direction (no transposition in the resize)
    ramp = np.repeat(np.repeat(np.linspace(0, 255, 100).astype(np.uint8)[None, :, None], 50, 0), 3, 2)
    row = compare.fer_input(ramp)[0, 10, :, 0]
    assert np.all(np.diff(row) >= 0) and row[0] < -0.9 and row[-1] > 0.9
    with pytest.raises(ValueError):
        compare.fer_input(np.zeros((48, 48), np.uint8))


def test_metrics_on_fake_probabilities():
    labels = np.array([0, 1, 2, 3, 5, 6, 0, 3])  # no neutral, like CK+
    probs = np.eye(7)[[0, 1, 2, 3, 5, 6, 4, 5]]  # two wrong: anger -> neutral, happiness -> surprise
    m = compare.score(labels, probs, n_skipped=2)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert set(m["recall"]) == {c for c in CLASSES if c != "neutral"}  # recall of the classes the set holds
    assert m["recall"]["anger"] == pytest.approx(0.5) and m["recall"]["disgust"] == 1
    assert m["n_images"] == 8 and m["n_skipped"] == 2
    table = compare.format_table({"a": {"s1": m, "s2": m}, "b": {"s1": m}})
    lines = table.splitlines()
    assert lines[0].startswith("| peer | s1 acc | s1 macro-F1 | s2 acc")
    assert "| a | 0.7500 |" in lines[2] and lines[3].endswith("| — | — |")


def test_unreachable_registry_skips_and_writes_nothing(tmp_path, monkeypatch, capsys):
    def unreachable(url, registry):
        raise compare.PeerUnavailable(f"the {registry} registry ({url}) cannot be reached: test")

    monkeypatch.setattr(compare, "_probe", unreachable)
    monkeypatch.setattr(compare, "_litert_importable", lambda: False)
    out = tmp_path / "peers.json"
    assert compare.main(["--peers", "fer", "--cache", str(tmp_path / "cache"), "--output", str(out)]) is None
    assert not out.exists()
    assert "skipped, nothing written" in capsys.readouterr().err


def test_installed_peers_score_a_few_ckplus_faces(tmp_path):
    cache = compare.DEFAULT_CACHE
    for peer, installed in (("face-api.js", compare.faceapi_installed), ("fer", compare.fer_installed)):
        if not installed(cache):  # the test would install it: not offline, not fast
            pytest.skip(f"{peer} is not installed in {cache} as pinned: run benchmarks/peers/compare.py once.")
    if not (compare.DEFAULT_DATA_ROOT / "crossdomain_dev" / "ckplus48").is_dir():
        pytest.skip("no CK+ dev faces under ../shared/data")
    out = tmp_path / "peers.json"
    result = compare.main(["--sets", "ckplus_dev", "--max_images", "12", "--output", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    for peer in compare.PEERS:
        m = result[peer]["ckplus_dev"]
        assert m["n_images"] == 12 and 0 <= m["accuracy"] <= 1 and "neutral" not in m["recall"]
    assert result["versions"]["face-api.js"]["@vladmandic/face-api"] == "1.7.15"
    assert result["versions"]["fer"]["fer"] == compare.FER_VERSION
