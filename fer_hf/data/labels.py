"""Canonical emotion classes and label harmonisation by *name*.

Every source (FER2013, FER+, RAF-DB, AffectNet, an imagefolder, the synthetic demo data) declares
its own label names in its own order. We never map by integer position: each name goes through one
alias table to one of the seven canonical classes, or to `DROP` (contempt, unknown, NF), or it is
an error that lists the names we could not place.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
# FER+'s ten annotator counts, in its votes file's column order (and the `votes` column of a FER+ folder)
FERPLUS_VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
ID2LABEL = dict(enumerate(CLASSES))
LABEL2ID = {name: i for i, name in enumerate(CLASSES)}
DROP = -1  # canonical id of a label we deliberately leave out

# One alias table; keys are lower-case with spaces/dashes/underscores removed (see `normalise_name`).
ALIASES = {
    "anger": "anger", "angry": "anger", "mad": "anger",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness", "happy face": "happiness",
    "neutral": "neutral", "calm": "neutral",
    "sadness": "sadness", "sad": "sadness", "sorrow": "sadness",
    "surprise": "surprise", "surprised": "surprise", "suprise": "surprise",
}
# Classes outside the seven: dropped with a count, never silently kept.
DROPPED_NAMES = {"contempt", "unknown", "nf", "notface", "noface", "nonface", "none", "uncertain"}


def normalise_name(name: str) -> str:
    """`" Happy_Face "` -> `"happyface"`: case, spacing and separators do not matter."""
    return "".join(ch for ch in str(name).strip().lower() if ch.isalnum())


_ALIASES = {normalise_name(k): v for k, v in ALIASES.items()}
_DROPPED = {normalise_name(n) for n in DROPPED_NAMES}


class UnknownLabelError(ValueError):
    """A source uses label names that are neither canonical, an alias, nor a dropped class."""


def canonical_name(name: str) -> str | None:
    """The canonical class of a source label name, `None` for a dropped class; raises if unknown."""
    key = normalise_name(name)
    if key in _DROPPED:
        return None
    if key not in _ALIASES:
        raise UnknownLabelError(f"unknown emotion label {name!r}")
    return _ALIASES[key]


def label_mapping(source_names: Iterable[str], source: str = "dataset") -> np.ndarray:
    """Array `m` with `m[source_id]` = canonical id (or `DROP`), from the source's ordered label names.

    Raises `UnknownLabelError` listing *every* name that could not be placed, with the alias table's
    vocabulary, so one run tells the user all they need to fix.
    """
    names = list(source_names)
    mapping, unknown = [], []
    for name in names:
        try:
            canon = canonical_name(name)
        except UnknownLabelError:
            unknown.append(name)
            continue
        mapping.append(DROP if canon is None else LABEL2ID[canon])
    if unknown:
        raise UnknownLabelError(
            f"{source}: label names {unknown} are not emotions we know. Known names: "
            f"{sorted(set(ALIASES))}; dropped on purpose: {sorted(DROPPED_NAMES)}. "
            "Rename the class folders / ClassLabel names, or add an alias in fer_hf/data/labels.py."
        )
    return np.asarray(mapping, dtype=np.int64)


def missing_classes(mapping: np.ndarray) -> list[str]:
    """Canonical classes that a source's mapping never reaches (e.g. CK+ without neutral)."""
    present = {int(i) for i in mapping if i != DROP}
    return [name for i, name in enumerate(CLASSES) if i not in present]
