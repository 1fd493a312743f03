"""Label harmonisation by name: canonical order, aliases, dropped classes, unknown names."""

import numpy as np
import pytest

from fer_hf.data.labels import (
    CLASSES,
    DROP,
    LABEL2ID,
    UnknownLabelError,
    canonical_name,
    label_mapping,
    missing_classes,
)


def test_canonical_order():
    assert CLASSES == ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")


@pytest.mark.parametrize("name,expected", [
    ("angry", "anger"), ("Anger", "anger"), ("HAPPINESS", "happiness"), ("happy", "happiness"),
    ("sad", "sadness"), ("Surprised", "surprise"), ("fearful", "fear"), (" Neutral ", "neutral"),
    ("disgusted", "disgust"),
])
def test_aliases(name, expected):
    assert canonical_name(name) == expected


def test_fer2013_order_maps_by_name_not_position():
    fer = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    m = label_mapping(fer)
    assert [CLASSES[i] for i in m] == ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    assert m[fer.index("sad")] == LABEL2ID["sadness"] and m[fer.index("neutral")] == LABEL2ID["neutral"]


def test_rafdb_and_affectnet_orders():
    raf = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
    assert [CLASSES[i] for i in label_mapping(raf)] == raf
    affectnet = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
    m = label_mapping(affectnet)
    assert m[-1] == DROP and list(m[:-1]) == [LABEL2ID[n] for n in
                                              ["neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger"]]


def test_dropped_classes():
    assert list(label_mapping(["contempt", "unknown", "NF", "happy"])) == [DROP, DROP, DROP, LABEL2ID["happiness"]]


def test_unknown_names_are_listed():
    with pytest.raises(UnknownLabelError) as err:
        label_mapping(["happy", "boredom", "pain"], source="mydata")
    assert "boredom" in str(err.value) and "pain" in str(err.value) and "mydata" in str(err.value)


def test_missing_classes():
    ck_plus = ["anger", "disgust", "fear", "happy", "sadness", "surprise"]
    assert missing_classes(label_mapping(ck_plus)) == ["neutral"]
    assert missing_classes(np.arange(7)) == []
