"""Readers that turn raw FER sources into one stream of labelled examples, in the source's own scheme.

Each reader returns a `Source`: the ordered label names (stored later as a `ClassLabel`, so training
maps them to the canonical seven by *name*), and an iterable of `Example`s whose images are not yet
decoded. `dataset_card.write_dataset` decodes each image exactly once, keeps the good ones and lists
the bad ones in `rejected.csv`. Classes outside the seven (contempt, unknown, NF, FER+ vote ties)
are dropped here, before any image is read, and counted in `Source.dropped`.

Formats: FER2013 (`fer2013.csv`, pixel rows), FER+ (FER2013 rows + the `fer2013new.csv` votes,
joined row by row), RAF-DB basic (`list_patition_label.txt` + aligned crops), AffectNet (class
folders or an annotation CSV) and a generic imagefolder with emotion-named class folders.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .labels import CLASSES, FERPLUS_VOTES, canonical_name, label_mapping
from .transforms import BadImageError

FORMATS = ("fer2013", "ferplus", "rafdb", "affectnet", "imagefolder")
FER2013_NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FER2013_SPLITS = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
# fer2013new.csv vote columns, in file order; the first seven are the FER+ emotion scheme.
FERPLUS_NAMES = FERPLUS_VOTES[:7]
RAFDB_NAMES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]  # file ids 1..7
# AffectNet ids 0..10; 7 and above are not among the seven (8-10 only occur in the official CSVs).
AFFECTNET_NAMES = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger",
                   "contempt", "none", "uncertain", "no-face"]
SPLIT_ALIASES = {"train": "train", "training": "train", "trainset": "train",
                 "val": "validation", "valid": "validation", "validation": "validation", "valset": "validation",
                 "dev": "validation", "test": "test", "testing": "test", "testset": "test"}


@dataclass
class Example:
    """One image to prepare: `image` is a file path, encoded bytes, or a function building a PIL image."""

    split: str
    file: str  # where it came from (relative path or csv row), for the `file` column and rejected.csv
    label: int  # index into `Source.names`
    image: str | bytes | Callable[[], Image.Image]
    votes: list[int] | None = None  # FER+: the ten annotator counts, FERPLUS_VOTES order


@dataclass
class Source:
    format: str
    names: list[str]
    examples: Iterable[Example]
    total: int | None = None  # for the progress bar; None when unknown up front
    dropped: Counter = field(default_factory=Counter)  # {reason: rows} left out for their label
    votes: bool = False  # examples carry `votes`
    description: str = ""  # how splits and labels were derived, for the dataset card


def _split_name(name: str) -> str | None:
    return SPLIT_ALIASES.get("".join(ch for ch in name.lower() if ch.isalnum()))


def _existing(path: str | os.PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--input {str(path)!r}: no such file or folder (expected {what}).")
    return path


# ---------------------------------------------------------------- FER2013 and FER+ (pixel rows)

def _pixels(text: str) -> Callable[[], Image.Image]:
    """A builder, so that the writer parses the row (and rejects a bad one) like any other image."""
    def build() -> Image.Image:
        try:
            arr = np.array(text.split(), dtype=np.int64)
        except ValueError as err:
            raise BadImageError(f"pixel row is not numbers ({err})") from err
        side = round(len(arr) ** 0.5)
        if side * side != len(arr) or side < 2 or arr.min() < 0 or arr.max() > 255:
            raise BadImageError(f"pixel row of {len(arr)} values is not a square 8-bit image")
        return Image.fromarray(arr.reshape(side, side).astype(np.uint8), "L")
    return build


def _fer2013_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"emotion", "pixels", "Usage"} <= set(reader.fieldnames or []):
            raise ValueError(f"{path}: expected FER2013 columns emotion,pixels,Usage; found {reader.fieldnames}")
        for i, row in enumerate(reader):
            if row["Usage"] not in FER2013_SPLITS:
                raise ValueError(f"{path} row {i + 2}: Usage {row['Usage']!r} is not one of {list(FER2013_SPLITS)}")
            yield i, row


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return max(0, sum(1 for _ in f) - 1)


def read_fer2013(path: str | os.PathLike) -> Source:
    """`fer2013.csv` (`emotion,pixels,Usage`): Training/PublicTest/PrivateTest -> train/validation/test."""
    path = _existing(path, "fer2013.csv")

    def examples():
        for i, row in _fer2013_rows(path):
            label = int(row["emotion"])
            if not 0 <= label < len(FER2013_NAMES):
                raise ValueError(f"{path} row {i + 2}: emotion {label} is outside FER2013's ids 0..6")
            yield Example(FER2013_SPLITS[row["Usage"]], f"row {i}", label, _pixels(row["pixels"]))
    return Source("fer2013", list(FER2013_NAMES), examples(), total=_count_lines(path),
                  description="FER2013 `Usage` Training/PublicTest/PrivateTest -> train/validation/test; "
                  "48x48 grayscale pixel rows stored as PNG.")


def ferplus_vote(votes: np.ndarray) -> tuple[int | None, str | None]:
    """Majority vote over the ten FER+ columns: `(index into FERPLUS_NAMES, None)` or `(None, drop reason)`."""
    top = votes.max()
    if top <= 0:
        return None, "no votes"
    if np.count_nonzero(votes == top) > 1:
        return None, "tie"
    winner = int(votes.argmax())
    return (winner, None) if winner < len(FERPLUS_NAMES) else (None, FERPLUS_VOTES[winner])


def _read_votes(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ["Usage", *FERPLUS_VOTES] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a FER+ votes file, missing columns {missing} (have {reader.fieldnames})")
        return list(reader)


def read_ferplus(fer2013_csv: str | os.PathLike, votes_csv: str | os.PathLike) -> Source:
    """FER2013 pixels labelled by the FER+ majority vote; row i of `votes_csv` belongs to row i of the csv.

    Dropped (counted): top-count ties, unknown/NF/contempt majorities, rows without votes. Every kept
    row also carries its ten vote counts (`votes`, FER+ column order, as in the Hub layout), from which
    `label_mode: votes` trains on the annotators' distribution.
    """
    path, votes_path = _existing(fer2013_csv, "fer2013.csv"), _existing(votes_csv, "fer2013new.csv (--ferplus_votes)")
    votes = _read_votes(votes_path)
    n_rows = _count_lines(path)
    if n_rows != len(votes):
        raise ValueError(f"{votes_path} has {len(votes)} rows but {path} has {n_rows}: FER+ votes are joined to "
                         "FER2013 row by row, so both files must be complete and in their original order.")
    counts = [np.array([float(row[c] or 0) for c in FERPLUS_VOTES]) for row in votes]
    decisions = [ferplus_vote(c) for c in counts]  # decided up front: the drop counts need no image
    source = Source("ferplus", list(FERPLUS_NAMES), [], total=sum(w is not None for w, _ in decisions),
                    dropped=Counter(reason for w, reason in decisions if w is None), votes=True,
                    description="FER2013 pixels relabelled by the FER+ majority vote of 10 annotators "
                    "(`fer2013new.csv`, joined to `fer2013.csv` row by row); rows whose top vote count is tied, "
                    "or won by unknown/NF/contempt, are dropped. `votes`: the ten annotator counts in FER+ column order "
                    f"({', '.join(FERPLUS_VOTES)}).")

    def examples():
        for i, row in _fer2013_rows(path):
            if votes[i]["Usage"] != row["Usage"]:
                raise ValueError(f"row {i + 2}: Usage {row['Usage']!r} in {path} but {votes[i]['Usage']!r} in "
                                 f"{votes_path}; the files are not aligned row by row.")
            winner = decisions[i][0]
            if winner is None:
                continue
            name = votes[i].get("Image name") or f"row {i}"
            yield Example(FER2013_SPLITS[row["Usage"]], name, winner, _pixels(row["pixels"]),
                          [int(c) for c in counts[i]])
    source.examples = examples()
    return source


# ---------------------------------------------------------------- RAF-DB basic

def _rafdb_paths(path: Path) -> tuple[Path, Path]:
    """(label file, basic root) from the basic root, its EmoLabel folder, or the label file itself."""
    candidates = [path, path / "list_patition_label.txt", path / "EmoLabel" / "list_patition_label.txt"]
    label_file = next((p for p in candidates if p.is_file()), None)
    if label_file is None:
        raise FileNotFoundError(f"{path}: no list_patition_label.txt (looked in the folder and its EmoLabel/)")
    root = label_file.parent.parent if label_file.parent.name == "EmoLabel" else label_file.parent
    return label_file, root


def read_rafdb(path: str | os.PathLike) -> Source:
    """RAF-DB basic: `train_00001.jpg 5` lines (1-based ids) and `Image/aligned/<name>_aligned.jpg`."""
    label_file, root = _rafdb_paths(_existing(path, "RAF-DB basic folder"))
    examples = []
    for n, line in enumerate(label_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            name, raw = line.split()
            label = int(raw) - 1
        except ValueError:
            raise ValueError(f"{label_file} line {n}: expected '<name>.jpg <1..7>', got {line!r}") from None
        split = _split_name(name.split("_")[0])
        if split is None or not 0 <= label < len(RAFDB_NAMES):
            raise ValueError(f"{label_file} line {n}: {line!r} needs a train_/test_ name and an id in 1..7")
        image = root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg"
        examples.append(Example(split, image.relative_to(root).as_posix(), label, str(image)))
    return Source("rafdb", list(RAFDB_NAMES), examples, total=len(examples),
                  description="RAF-DB basic, aligned crops; `train_`/`test_` names -> train/test; label = file id - 1.")


# ---------------------------------------------------------------- class folders: imagefolder, AffectNet

def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _walk_classes(root: Path) -> list[tuple[str, str, Path]]:
    """`(split, class folder, file)` for `root/[split/]class/**/file`; split folders are optional.

    Every non-hidden file is listed, images or not: a stray non-image is then rejected by name in
    rejected.csv instead of disappearing without a trace.
    """
    dirs = _subdirs(root)
    if not dirs:
        raise ValueError(f"{root}: no class folders (expected {root}/[train|validation|test/]<class>/<image>).")
    if all(_split_name(d.name) for d in dirs):
        layout = [(_split_name(d.name), c) for d in dirs for c in _subdirs(d)]
    else:
        layout = [("train", d) for d in dirs]
    return [(split, cls.name, f) for split, cls in layout for f in sorted(cls.rglob("*"))
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(cls).parts)]


def read_imagefolder(path: str | os.PathLike) -> Source:
    """Class folders named by emotion (aliases allowed); names stored canonically, only those present."""
    root = _existing(path, "a folder of class folders")
    files = _walk_classes(root)
    folders = sorted({cls for _, cls, _ in files})
    canon = dict(zip(folders, label_mapping(folders, str(root)).tolist()))  # raises listing unknown names
    names = [c for i, c in enumerate(CLASSES) if i in canon.values()]
    source = Source("imagefolder", names, [], description="Class folders named by emotion, stored under canonical "
                    "names; split folders (train/validation/test) kept when present, else all rows are train.")
    for split, cls, f in files:
        if canon[cls] < 0:
            source.dropped[cls] += 1
        else:
            source.examples.append(Example(split, f.relative_to(root).as_posix(), names.index(CLASSES[canon[cls]]), str(f)))
    source.total = len(source.examples)
    return source


_AFFECTNET_CANON = [canonical_name(n) for n in AFFECTNET_NAMES[:7]]
_PATH_COLUMNS = ("path", "pth", "image", "file", "filepath", "subdirectory_filepath")
_LABEL_COLUMNS = ("expression", "label", "emotion", "class")


def affectnet_label(value: str) -> tuple[int | None, str | None]:
    """An AffectNet id (`"0"`..`"10"`) or class name -> `(id in 0..6, None)` or `(None, drop reason)`."""
    value = str(value).strip()
    if value.isdigit():
        i = int(value)
        if i >= len(AFFECTNET_NAMES):
            raise ValueError(f"AffectNet label {value!r} is outside ids 0..{len(AFFECTNET_NAMES) - 1}")
        return (i, None) if i < 7 else (None, AFFECTNET_NAMES[i])
    canon = canonical_name(value)
    return (None, value.lower()) if canon is None else (_AFFECTNET_CANON.index(canon), None)


def _column(fieldnames: list[str], wanted: tuple[str, ...], path: Path, what: str) -> str:
    by_key = {"".join(ch for ch in c.lower() if ch.isalnum() or ch == "_"): c for c in fieldnames}
    for key in wanted:
        if key in by_key:
            return by_key[key]
    raise ValueError(f"{path}: no {what} column; expected one of {wanted}, found {fieldnames}")


def _affectnet_csv(path: Path) -> list[tuple[str, str, str, Path]]:
    """`(split, file, label, image path)` rows; split from the csv's name, else from the image's folders."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        pcol = _column(fields, _PATH_COLUMNS, path, "image path")
        lcol = _column(fields, _LABEL_COLUMNS, path, "expression/label")
        rows = list(reader)
    by_name = _split_name(path.stem)
    out = []
    for row in rows:
        rel = Path(row[pcol])
        split = by_name or next((s for part in rel.parts[:-1] if (s := _split_name(part))), "train")
        out.append((split, rel.as_posix(), row[lcol], path.parent / rel))
    return out


def read_affectnet(path: str | os.PathLike) -> Source:
    """AffectNet: an annotation csv (or a folder of them), else `[train|val/]<id or name>/` class folders."""
    root = _existing(path, "an AffectNet folder or annotation csv")
    csvs = [root] if root.is_file() else sorted(root.glob("*.csv"))
    if csvs:
        rows = [r for c in csvs for r in _affectnet_csv(c)]
    else:
        rows = [(s, f.relative_to(root).as_posix(), cls, f) for s, cls, f in _walk_classes(root)]
    named = sorted({str(v).strip() for _, _, v, _ in rows if not str(v).strip().isdigit()})
    label_mapping(named, str(root))  # every unknown class name at once, before any image is read
    source = Source("affectnet", AFFECTNET_NAMES[:7], [], description="AffectNet ids 0-6 (contempt, 7, and ids "
                    "8-10 none/uncertain/no-face are dropped); splits from train/val folder or csv names.")
    for split, rel, value, image in rows:
        label, reason = affectnet_label(value)
        if label is None:
            source.dropped[reason] += 1
        else:
            source.examples.append(Example(split, rel, label, str(image)))
    source.total = len(source.examples)
    return source


def read_source(fmt: str, path: str | os.PathLike, ferplus_votes: str | None = None) -> Source:
    """The reader for `fmt` (one of `FORMATS`)."""
    if fmt == "ferplus":
        if not ferplus_votes:
            raise ValueError("--format ferplus needs --ferplus_votes fer2013new.csv next to --input fer2013.csv")
        return read_ferplus(path, ferplus_votes)
    readers = {"fer2013": read_fer2013, "rafdb": read_rafdb, "affectnet": read_affectnet, "imagefolder": read_imagefolder}
    if fmt not in readers:
        raise ValueError(f"unknown --format {fmt!r}; expected one of {FORMATS}")
    return readers[fmt](path)
