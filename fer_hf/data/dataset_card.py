"""Write a prepared `Source` as a Hub-layout dataset folder, decoding every image exactly once.

    OUT/data/<split>-0000K-of-0000N.parquet   image (bytes), label (ClassLabel, the source's names), file
    OUT/README.md                             dataset card: YAML (configs, features) + sizes, classes, rejects
    OUT/rejected.csv                          file, reason — every image that could not be used
    OUT/class_counts.json                     {split: {source: {canonical class: rows}}}, as training logs it

Images that decode (through `transforms.open_image`, the same function training uses) are kept; a
clean JPEG/PNG keeps its original bytes, anything that needed converting (16-bit, CMYK, palette,
alpha, EXIF rotation, pixel rows) is stored as a plain 8-bit L/RGB image: JPEG q95 if it came as a
JPEG, else PNG. So a dataset prepared here never hands training an image it cannot read.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections import Counter
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, Image, List, Value
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from huggingface_hub import DatasetCard, DatasetCardData
from PIL import Image as PILImage
from tqdm.auto import tqdm

from .labels import CLASSES, label_mapping
from .prepare import Example, Source
from .sources import format_class_counts
from .transforms import BadImageError, open_image

SPLIT_ORDER = ("train", "validation", "test")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_EXIF_ORIENTATION = 0x0112
_BYTESIO = re.compile(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>")  # PIL's name for in-memory files: noise here


def features_for(source: Source) -> Features:
    cols = {"image": Image(), "label": ClassLabel(names=list(source.names))}
    if source.votes:
        cols["votes"] = List(Value("int32"))  # FER+ column order, as in the Hub layout
    cols["file"] = Value("string")
    return Features(cols)


def _as_stored(img: PILImage.Image, rgb: PILImage.Image, fmt: str | None) -> bytes:
    """Plain 8-bit bytes of the decoded image: grayscale stays L, JPEG stays JPEG, the rest PNG."""
    out = rgb.convert("L") if img.mode in _GRAY_MODES else rgb
    buf = io.BytesIO()
    if fmt in ("JPEG", "MPO"):
        out.save(buf, format="JPEG", quality=95)
    else:
        out.save(buf, format="PNG")
    return buf.getvalue()


def encode_image(example: Example) -> tuple[bytes, bool]:
    """`(bytes to store, converted?)`; raises `BadImageError` for anything training could not use."""
    if callable(example.image):  # pixel rows: always encoded, nothing to convert
        img = example.image()
        return _as_stored(img, open_image(img), None), False
    data = example.image
    if isinstance(data, str):
        try:
            data = Path(data).read_bytes()
        except OSError as err:
            raise BadImageError(f"{type(err).__name__}: {err.strerror or err}") from err
    if not data:
        raise BadImageError("EmptyFile: 0 bytes")
    rgb = open_image(data)  # the one full decode; what follows only reads the header again
    with PILImage.open(io.BytesIO(data)) as img:
        clean = (img.format in ("JPEG", "PNG") and img.mode in ("L", "RGB") and getattr(img, "n_frames", 1) == 1
                 and img.getexif().get(_EXIF_ORIENTATION, 1) == 1)
        return (data, False) if clean else (_as_stored(img, rgb, img.format), True)


class ShardWriter:
    """Buffers rows per split and writes parquet shards, named `-of-N` at the end.

    A shard closes at `shard_size` rows or `max_shard_bytes` of image bytes, whichever comes first,
    so memory stays bounded for large photos (AffectNet) as well as for 48 px crops (FER).
    """

    def __init__(self, data_dir: Path, features: Features, shard_size: int, max_shard_bytes: int = 256 * 2**20):
        self.data_dir, self.features = data_dir, features
        self.shard_size, self.max_shard_bytes = shard_size, max_shard_bytes
        self.buffers: dict[str, list[dict]] = {}
        self.sizes: Counter = Counter()
        self.shards: dict[str, list[Path]] = {}

    def add(self, split: str, row: dict) -> None:
        self.buffers.setdefault(split, []).append(row)
        self.sizes[split] += len(row["image"]["bytes"])
        if len(self.buffers[split]) >= self.shard_size or self.sizes[split] >= self.max_shard_bytes:
            self.flush(split)

    def flush(self, split: str) -> None:
        rows = self.buffers.pop(split, [])
        self.sizes[split] = 0
        if rows:
            path = self.data_dir / f"{split}-{len(self.shards.get(split, [])):05d}.tmp"
            quiet = not are_progress_bars_disabled()  # one bar (ours, over images) is enough
            if quiet:
                disable_progress_bars()
            try:
                Dataset.from_list(rows, features=self.features).to_parquet(str(path))
            finally:
                if quiet:
                    enable_progress_bars()
            self.shards.setdefault(split, []).append(path)

    def close(self) -> dict[str, list[str]]:
        for split in list(self.buffers):
            self.flush(split)
        names = {}
        for split, paths in self.shards.items():
            names[split] = []
            for k, path in enumerate(paths):
                final = path.with_name(f"{split}-{k:05d}-of-{len(paths):05d}.parquet")
                path.rename(final)
                names[split].append(final.relative_to(self.data_dir.parent).as_posix())
        return names


def _fresh_output(out: Path, overwrite: bool) -> Path:
    """OUT/data, emptied: stale shards from an earlier run would be loaded with the new ones."""
    data_dir = out / "data"
    if data_dir.exists() and any(data_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{data_dir} already holds files; pass --overwrite_output_dir to replace them.")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def _ordered(splits) -> list[str]:
    return sorted(splits, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))


def write_dataset(source: Source, output_dir: str | Path, shard_size: int = 10_000, overwrite: bool = False,
                  name: str | None = None) -> dict:
    """Decode, convert and write every example of `source`; returns the report also stored in the card."""
    out = Path(output_dir)
    data_dir = _fresh_output(out, overwrite)
    name = name or out.resolve().name  # the source name training will give this folder
    features = features_for(source)
    writer = ShardWriter(data_dir, features, shard_size)
    rejected, converted, labels = [], 0, {}
    for ex in tqdm(source.examples, total=source.total, desc=f"prepare {source.format}", unit="img"):
        try:
            data, changed = encode_image(ex)
        except BadImageError as err:
            rejected.append((ex.file, _BYTESIO.sub("", str(err))))
            continue
        row = {"image": {"bytes": data, "path": None}, "label": ex.label, "file": ex.file}
        if source.votes:
            row["votes"] = ex.votes
        writer.add(ex.split, row)
        converted += changed
        labels.setdefault(ex.split, Counter())[ex.label] += 1
    files = writer.close()
    _write_rejected(out / "rejected.csv", rejected)
    if not files:
        raise ValueError(f"{source.format}: no usable image at all ({len(rejected)} rejected, see {out / 'rejected.csv'}).")
    report = {
        "format": source.format, "name": name, "output_dir": str(out), "names": list(source.names),
        "splits": {s: sum(labels[s].values()) for s in _ordered(labels)},
        "class_counts": canonical_counts(labels, source.names, name),
        "rejected": len(rejected), "rejected_reasons": dict(Counter(_kind(r) for _, r in rejected)),
        "converted": converted, "dropped": dict(source.dropped), "data_files": files,
        "description": source.description,
    }
    (out / "class_counts.json").write_text(json.dumps(report["class_counts"], indent=2))
    write_card(out / "README.md", report, features)
    return report


def _kind(reason: str) -> str:
    """`"OSError: image file is truncated"` -> `"OSError"`: the error class, to tally reasons."""
    head = reason.split(":")[0]
    return head if head.isidentifier() else reason


def canonical_counts(labels: dict[str, Counter], names: list[str], name: str) -> dict:
    """`{split: {name: {canonical class: rows}}}`: the shape of `data.class_counts`, for the same table."""
    mapping = label_mapping(names, name)
    table = {}
    for split in _ordered(labels):
        counts = dict.fromkeys(CLASSES, 0)
        for label, n in labels[split].items():
            counts[CLASSES[mapping[label]]] += n
        table[split] = {name: counts}
    return table


def _write_rejected(path: Path, rejected: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "reason"])
        writer.writerows(rejected)


def write_card(path: Path, report: dict, features: Features) -> None:
    """README.md: the YAML `datasets.load_dataset` reads (splits, ClassLabel names) and a readable body."""
    data = DatasetCardData(pretty_name=f"{report['name']} ({report['format']}, prepared by fer-hf)",
                           task_categories=["image-classification"])
    DatasetInfosDict({"default": DatasetInfo(features=features)}).to_dataset_card_data(data)
    MetadataConfigs({"default": {"data_files": [{"split": s, "path": f"data/{s}-*"} for s in report["splits"]]}}
                    ).to_dataset_card_data(data)
    DatasetCard(f"---\n{data.to_yaml()}\n---\n{card_body(report)}").save(path)


def _table(head: tuple[str, str], rows: dict) -> list[str]:
    return ["", f"| {head[0]} | {head[1]} |", "|---|---|"] + [f"| {k} | {v:,} |" for k, v in rows.items()]


def card_body(report: dict) -> str:
    names = ", ".join(f"{i} {n}" for i, n in enumerate(report["names"]))
    lines = [f"# {report['name']}", "",
             f"Prepared from the raw `{report['format']}` files by fer-hf's `scripts/prepare_data.py`; load it with "
             "`datasets.load_dataset(\"<this folder or repo id>\")`. " + report["description"], "",
             (f"Labels keep the source's own scheme and order ({names}); fer-hf maps them to its seven classes "
             "by name. `file` names each row's origin."), *_table(("split", "rows"), report["splits"]), "",
             "Rows per split and class (canonical names):", "",
             "| split | " + " | ".join(CLASSES) + " |", "|---|" + "---|" * len(CLASSES)]
    for split, per_source in report["class_counts"].items():
        for counts in per_source.values():
            lines.append(f"| {split} | " + " | ".join(f"{counts[c]:,}" for c in CLASSES) + " |")
    lines += ["", f"Rejected images (unreadable; each listed with its reason in `rejected.csv`): **{report['rejected']}**"]
    if report["rejected"]:
        lines += _table(("reason", "images"), report["rejected_reasons"])
    lines += ["", (f"Images converted to plain 8-bit L/RGB (16-bit, CMYK, palette, alpha, EXIF rotation): "
              f"{report['converted']}")]
    if report["dropped"]:
        lines += ["", "Rows dropped for their label (not one of the seven emotions, or no majority vote):",
                  *_table(("reason", "rows"), report["dropped"])]
    return "\n".join(lines) + "\n"


def report_text(report: dict) -> str:
    """What the script prints: the class table of `data.format_class_counts` and the drop counts."""
    return (f"{format_class_counts(report['class_counts'])}\n"
            f"rejected images: {report['rejected']} {report['rejected_reasons'] or ''}\n"
            f"converted images: {report['converted']}\n"
            f"dropped rows: {report['dropped'] or 'none'}")
