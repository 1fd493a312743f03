"""Tests for the embedded synthetic face data (fer_hf.data.synthetic)."""

import itertools

import datasets
import numpy as np
import pytest

from fer_hf.data.synthetic import CANONICAL, SOURCE_NAMES, _render, draw_face, load_synthetic, make_source

EXPECTED = {
    "synthetic_fer": {"size": 48, "mode": "L", "splits": {"train", "validation"},
                          "names": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]},
    "synthetic_raf": {"size": 100, "mode": "RGB", "splits": {"train"},
                          "names": ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]},
    "synthetic_affectnet": {"size": 128, "mode": "RGB", "splits": {"train", "validation"},
                                "names": ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger",
                                       "contempt"]},
}
N = 10  # small n_per_class keeps the suite fast


@pytest.fixture(scope="module")
def sources():
    return load_synthetic(n_per_class=N, seed=0)


def _raw_bytes(ds, idx):
    """Stored (encoded) image bytes, to compare datasets byte for byte."""
    return ds.cast_column("image", datasets.Image(decode=False))[idx]["image"]["bytes"]


def test_canonical_order_matches_labels_module():
    from fer_hf.data.labels import CLASSES

    assert CANONICAL == CLASSES


def test_load_synthetic_returns_all_sources(sources):
    assert tuple(sources) == SOURCE_NAMES
    assert all(isinstance(dd, datasets.DatasetDict) for dd in sources.values())


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_features_and_label_names(sources, name):
    dd = sources[name]
    assert set(dd) == EXPECTED[name]["splits"]
    for ds in dd.values():
        assert isinstance(ds.features["image"], datasets.Image)
        assert isinstance(ds.features["label"], datasets.ClassLabel)
        assert ds.features["label"].names == EXPECTED[name]["names"]


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_image_size_and_mode(sources, name):
    exp = EXPECTED[name]
    for ds in sources[name].values():
        for row in ds.select(range(5)):
            assert row["image"].mode == exp["mode"]
            assert row["image"].size == (exp["size"], exp["size"])


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_class_counts(sources, name):
    for split, ds in sources[name].items():
        per_class = N if split == "train" else N // 5
        counts = np.bincount(ds["label"], minlength=len(EXPECTED[name]["names"]))
        for label, count in zip(EXPECTED[name]["names"], counts):
            assert count == (per_class // 2 if label == "contempt" else per_class), (split, label)


def test_labels_are_shuffled(sources):
    labels = sources["synthetic_raf"]["train"]["label"]
    assert labels != sorted(labels)


def test_make_source_deterministic():
    a, b = make_source("synthetic_raf", 2, seed=3), make_source("synthetic_raf", 2, seed=3)
    c = make_source("synthetic_raf", 2, seed=4)
    assert a["train"]["label"] == b["train"]["label"]
    for i in range(3):
        assert _raw_bytes(a["train"], i) == _raw_bytes(b["train"], i)
    assert any(_raw_bytes(a["train"], i) != _raw_bytes(c["train"], i) for i in range(3))


def test_make_source_rejects_unknown_name():
    with pytest.raises(ValueError):
        make_source("fer2013", 2)


@pytest.mark.parametrize("emotion", CANONICAL)
@pytest.mark.parametrize("color", [True, False])
def test_draw_face_every_emotion(emotion, color):
    img = draw_face(emotion, np.random.default_rng(0), size=64, color=color)
    assert img.mode == ("RGB" if color else "L")
    assert img.size == (64, 64)
    assert np.asarray(img).std() > 5  # something was drawn, not a blank canvas


def test_draw_face_rejects_non_canonical():
    for bad in ("contempt", "happy", "Anger"):
        with pytest.raises(ValueError):
            draw_face(bad, np.random.default_rng(0))


def test_draw_face_determinism():
    same = [draw_face("fear", np.random.default_rng(7), size=48).tobytes() for _ in range(2)]
    other = draw_face("fear", np.random.default_rng(8), size=48).tobytes()
    assert same[0] == same[1]
    assert same[0] != other


def test_expression_carries_the_label():
    """With nuisance held fixed, faces of different emotions differ more than two faces of the same
    emotion drawn at different intensities, and the change stays confined to a small facial area."""
    within, between, changed = [], [], []
    for nuisance_seed in range(4):
        imgs = {e: [np.asarray(_render(e, np.random.default_rng(nuisance_seed), np.random.default_rng(100 + j),
                                       64, True), np.float32) for j in range(3)] for e in CANONICAL}
        for e in CANONICAL:
            within += [np.abs(a - b).mean() for a, b in itertools.combinations(imgs[e], 2)]
        for e1, e2 in itertools.combinations(CANONICAL, 2):
            for a, b in itertools.product(imgs[e1], imgs[e2]):
                between.append(np.abs(a - b).mean())
                changed.append((np.abs(a - b) > 0).any(axis=-1).mean())
    assert np.mean(between) > 1.5 * np.mean(within)
    assert min(between) > 0  # every pair of emotions is visibly different
    assert max(changed) < 0.2  # expression never leaks into background / pose / lighting


def test_nuisance_varies_between_samples():
    imgs = [np.asarray(draw_face("neutral", np.random.default_rng(s), size=64), np.float32) for s in range(8)]
    diffs = [np.abs(a - b).mean() for a, b in itertools.combinations(imgs, 2)]
    assert min(diffs) > 10  # different pose, colours, background for every pair
