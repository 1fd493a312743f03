"""Sources -> one harmonised `DatasetDict` with a `source` column, splits and lazy transforms.

A *spec* names a source: `synthetic` (the embedded demo data, three sources), a local folder
(Hub-layout parquet, an imagefolder, or a `save_to_disk` folder), or a Hub dataset id. Each source's
labels are mapped to the canonical seven by name (`labels.py`); the result keeps the images
undecoded (`Image(decode=False)`) so that decoding happens lazily in `set_transform`, where a bad
image is skipped and counted instead of ending a run.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field

import datasets
import numpy as np
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    Image,
    List,
    Value,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)

from ..utils.offline import require_hub
from .labels import CLASSES, DROP, FERPLUS_VOTES, label_mapping, missing_classes

SOFT_LABEL = List(Value("float32"), length=len(CLASSES))
LABEL_MODES = ("majority", "votes")

logger = logging.getLogger(__name__)

CANONICAL = ClassLabel(names=list(CLASSES))
VALIDATION_NAMES = ("validation", "valid", "val", "dev")


@dataclass
class DataArguments:
    """Which data to train and evaluate on."""

    datasets: list[str] = field(
        default_factory=lambda: ["synthetic"],
        metadata={"help": "Sources: 'synthetic', a local folder (parquet/imagefolder/save_to_disk) or a Hub id."},
    )
    validation_split: float = field(default=0.1, metadata={"help": "Share of train held out when a source has no validation split."})
    synthetic_per_class: int = field(default=200, metadata={"help": "Training images per class per synthetic source."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set (quick runs)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation set (quick runs)."})
    label_mode: str = field(
        default="majority",
        metadata={"help": "Training targets: 'majority' (one-hot label) or 'votes' (the annotators' distribution over "
                  "the seven classes, from a source's FER+ `votes` column; sources without votes stay one-hot). "
                  "Evaluation always scores the majority label."},
    )
    second_labels: str | None = field(
        default=None,
        metadata={"help": "A source holding the same training faces with other annotators' labels (e.g. "
                  "../shared/data/fer2013 beside FER+): matched by image bytes, its one-hot label is blended into "
                  "the training targets with weight `second_label_weight`."},
    )
    second_label_weight: float = field(default=0.3, metadata={"help": "Weight of `second_labels` in the targets (0..1)."})
    report_sets: str | None = field(
        default=None,
        metadata={"help": "A data root holding the quality suite's sets (fer_hf.evaluation.suite.SUITE: FER+ validation, the "
                  "cross-domain dev sets), e.g. ../shared/data: the finished model is scored on each and the figures "
                  "go to all_results.json as suite_<set>_*. Reported only: never used to select or calibrate."},
    )
    grayscale: bool = field(
        default=False,
        metadata={"help": "Read every face in grey, in training and wherever the model is served (it is stored in the "
                  "model's pipeline settings): for data that is all grey, like FER2013 and FER+, so that colour photos "
                  "never meet a model that saw no colour."},
    )
    # Training augmentation (FerTransform). The defaults are the seed project's; fer2013_cpu.yaml turns
    # colour jitter off (grayscale faces) and shift/zoom on.
    rotation: float = field(default=10.0, metadata={"help": "Random rotation range, degrees (+-)."})
    translate: float = field(default=0.0, metadata={"help": "Random shift, as a share of the image side (+-)."})
    scale_jitter: float = field(default=0.0, metadata={"help": "Random zoom: scale drawn from 1 +- this."})
    color_jitter: float = field(default=0.2, metadata={"help": "Brightness/contrast/saturation jitter strength."})
    random_erasing: float = field(default=0.0, metadata={"help": "Probability of erasing a random rectangle."})
    augment_policy: str = field(default="none", metadata={"help": "torchvision policy on top: none, trivialaugment, "
                                "randaugment or autoaugment."})
    crop_scale: float = field(default=1.0, metadata={"help": "Random resized crop: the smallest crop's share of the "
                              "face's area (1: off)."})

    def __post_init__(self):
        if self.label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode={self.label_mode!r}: expected one of {LABEL_MODES}.")
        if str(self.second_labels).lower() in ("", "none"):
            self.second_labels = None
        if not 0 <= self.second_label_weight <= 1:
            raise ValueError(f"second_label_weight={self.second_label_weight}: expected a value in [0, 1].")

    def augmentation(self) -> dict:
        """The FerTransform keyword arguments of the training split."""
        keys = ("rotation", "translate", "scale_jitter", "color_jitter", "random_erasing", "crop_scale")
        return {**{k: getattr(self, k) for k in keys}, "policy": self.augment_policy}


def _find_column(ds: Dataset, names: tuple[str, ...], feature_type: type, what: str, source: str) -> str:
    for name in names:
        if name in ds.column_names:
            return name
    for name, feature in ds.features.items():
        if isinstance(feature, feature_type):
            return name
    raise ValueError(f"{source}: no {what} column (looked for {names} or a {feature_type.__name__} feature); "
                     f"columns are {ds.column_names}.")


def vote_distribution(votes, labels: np.ndarray, source: str = "dataset") -> np.ndarray:
    """(n, 7) float32: FER+ vote counts -> the annotators' distribution over the canonical seven.

    Contempt, unknown and not-a-face votes are removed and the rest renormalised (the FER+ paper's
    "probability" targets); a row with no emotion vote at all falls back to its one-hot label.
    """
    counts = np.asarray(votes, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != len(FERPLUS_VOTES):
        raise ValueError(f"{source}: `votes` must hold {len(FERPLUS_VOTES)} counts per row in FER+ order "
                         f"{list(FERPLUS_VOTES)}; got shape {counts.shape}.")
    dist = np.zeros((len(counts), len(CLASSES)))
    emotions = label_mapping(FERPLUS_VOTES[:7], source)  # FER+ column -> canonical id
    dist[:, emotions] = counts[:, :7]
    total = dist.sum(1, keepdims=True)
    one_hot = np.eye(len(CLASSES))[np.clip(labels, 0, None)]
    return np.where(total > 0, dist / np.maximum(total, 1e-12), one_hot).astype(np.float32)


def harmonise(ds: Dataset, source: str) -> Dataset:
    """Columns `image` (undecoded), `label` (canonical ClassLabel) and `source`; dropped classes removed.

    A FER+ `votes` column becomes `soft_label`, the vote distribution over the seven canonical classes.

    Only the label column is read; the image data is never rewritten (columns are swapped and rows
    selected through an indices mapping), so this is cheap on large datasets.
    """
    image_col = _find_column(ds, ("image", "img", "pixel_values"), Image, "image", source)
    label_col = _find_column(ds, ("label", "labels", "emotion"), ClassLabel, "label", source)
    feature = ds.features[label_col]
    if not isinstance(feature, ClassLabel):
        raise ValueError(  # noqa: TRY004
            f"{source}: label column {label_col!r} holds bare {feature} values, not named classes (ClassLabel), "
            "so its ids cannot be mapped to emotions safely. Convert it once with `python scripts/prepare_data.py "
            "--format {fer2013,ferplus,rafdb,affectnet,imagefolder} ...`, which names the classes."
        )
    mapping = label_mapping(feature.names, source)
    if missing := missing_classes(mapping):
        logger.warning("%s: no images of %s; those classes are learnt from other sources only.", source, missing)
    old = np.asarray(ds[label_col], dtype=np.int64)
    new = np.where(old >= 0, mapping[np.clip(old, 0, None)], DROP)
    soft = vote_distribution(ds["votes"], new, source) if "votes" in ds.column_names else None
    ds = ds.select_columns([image_col]).rename_column(image_col, "image") if image_col != "image" else ds.select_columns(["image"])
    ds = ds.cast_column("image", Image(decode=False))
    ds = ds.add_column("label", new.tolist(), feature=CANONICAL)
    if soft is not None:
        ds = ds.add_column("soft_label", soft.tolist(), feature=SOFT_LABEL)
    ds = ds.add_column("source", [source] * len(ds))
    keep = np.flatnonzero(new != DROP)
    if len(keep) < len(ds):
        named = old[(new == DROP) & (old >= 0)]
        dropped = {feature.names[i]: int(c) for i, c in enumerate(np.bincount(named, minlength=len(feature.names))) if c}
        if unlabelled := int((old < 0).sum()):  # -1: Hub datasets' "no label" (e.g. hidden test splits)
            dropped["unlabelled (-1)"] = unlabelled
        logger.warning("%s: dropped %d images of classes outside the seven: %s", source, len(ds) - len(keep), dropped)
        ds = ds.select(keep)
    return ds


def folder_cache_dir(path: str) -> str:
    """A datasets cache folder keyed by a local folder's location and content (file names, sizes, mtimes).

    `load_dataset(folder)` caches a folder whose README.md declares `configs` (as Hub-layout folders and
    prepare_data.py's do) under a hash that leaves out where the folder is and what its files hold: a second
    folder of the same name and README, or the same folder prepared again, silently loads the first one's
    cached rows (measured with datasets 5.2: 8 stale rows instead of 26,778). A cache folder of its own per
    location and content makes that impossible and still reuses the cache while nothing changed.
    """
    digest = hashlib.sha1(os.path.abspath(path).encode())
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            stat = os.stat(os.path.join(root, name))
            digest.update(f"{os.path.relpath(os.path.join(root, name), path)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return os.path.join(datasets.config.HF_DATASETS_CACHE, "fer_hf_local", digest.hexdigest()[:16])


def load_spec(spec: str, synthetic_per_class: int = 200, seed: int = 0) -> dict[str, DatasetDict]:
    """`{source_name: DatasetDict}` for one spec, not yet harmonised."""
    if spec == "synthetic":
        from .synthetic import load_synthetic

        return load_synthetic(n_per_class=synthetic_per_class, seed=seed)
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        name = os.path.basename(os.path.normpath(path))
        if os.path.isfile(os.path.join(path, "dataset_dict.json")):
            return {name: load_from_disk(path)}
        try:
            return {name: load_dataset(path, cache_dir=folder_cache_dir(path))}
        except ValueError as err:
            if "corresponds to no data" not in str(err):
                raise
            # datasets' own words ('Instruction "validation" corresponds to no data!') name no folder
            split = str(err).split('"')[1] if '"' in str(err) else "a"
            raise ValueError(f"dataset {spec!r}: the {split!r} split holds no rows; remove its file or add images.") from err
    if os.path.exists(path):
        raise ValueError(f"dataset {spec!r} is a file; expected a folder (imagefolder, parquet dataset) or a Hub id.")
    if spec.count("/") != 1:
        raise FileNotFoundError(f"dataset {spec!r}: no such folder, and not a Hub id of the form org/name.")
    require_hub(f"dataset {spec!r}", "Use a local copy instead: a folder made by scripts/prepare_data.py, an "
                "imagefolder, or `synthetic` for the embedded demo data.")
    return {spec: load_dataset(spec)}


def load_sources(specs: list[str], synthetic_per_class: int = 200, seed: int = 0) -> dict[str, DatasetDict]:
    """Every source of every spec, harmonised, split by split."""
    sources = {}
    for spec in specs:
        for name, dd in load_spec(spec, synthetic_per_class, seed).items():
            if isinstance(dd, Dataset):
                dd = DatasetDict(train=dd)
            sources[name] = DatasetDict({split: harmonise(ds, name) for split, ds in dd.items()})
    return sources


def validation_of(dd: DatasetDict, share: float, seed: int, source: str) -> tuple[Dataset, Dataset]:
    """(train, validation): the source's own validation split, else a stratified seeded split of train."""
    if "train" not in dd:
        raise ValueError(f"{source}: no 'train' split (splits: {list(dd)}).")
    for name in VALIDATION_NAMES:
        if name in dd:
            return dd["train"], dd[name]
    try:
        parts = dd["train"].train_test_split(test_size=share, stratify_by_column="label", seed=seed)
    except ValueError as err:  # a class with a single image cannot be stratified
        logger.warning("%s: stratified split impossible (%s); splitting at random.", source, err)
        parts = dd["train"].train_test_split(test_size=share, seed=seed)
    return parts["train"], parts["test"]


def _truncate(ds: Dataset, n: int | None, seed: int) -> Dataset:
    return ds if n is None or n >= len(ds) else ds.shuffle(seed=seed).select(range(n))


def with_targets(ds: Dataset, label_mode: str, source: str) -> Dataset:
    """`soft_label` kept (votes), made one-hot (a source without votes among voted ones) or dropped (majority)."""
    if label_mode == "majority":
        return ds.remove_columns("soft_label") if "soft_label" in ds.column_names else ds
    if "soft_label" in ds.column_names:
        return ds
    logger.warning("%s: no `votes` column; label_mode=votes trains it on its one-hot majority label.", source)
    return one_hot_targets(ds)


def one_hot_targets(ds: Dataset) -> Dataset:
    """A `soft_label` column that is the one-hot majority label."""
    one_hot = np.eye(len(CLASSES), dtype=np.float32)[np.asarray(ds["label"], dtype=np.int64)]
    return ds.add_column("soft_label", one_hot.tolist(), feature=SOFT_LABEL)


def image_keys(ds: Dataset) -> list[str]:
    """A content key per row: the sha1 of the encoded image bytes (else its path)."""
    column = ds.with_format(None).cast_column("image", Image(decode=False))["image"]
    return [hashlib.sha1(v["bytes"]).hexdigest() if v.get("bytes") else str(v.get("path")) for v in column]


def blend_second_labels(train: Dataset, spec: str, weight: float, seed: int = 0) -> Dataset:
    """`soft_label` <- (1 - weight) * soft_label + weight * the other source's label, for every training face that
    the source `spec` also holds (same image bytes); a face it holds several times gets the mean of its labels.

    FER+ relabelled FER2013's faces with ten annotators each; FER2013's own single labels mark expressions more
    strongly (less neutral), so the two are complementary targets for the same pixels."""
    other = concatenate_datasets([ds for dd in load_sources([spec], seed=seed).values() for ds in dd.values()])
    one_hot = np.eye(len(CLASSES), dtype=np.float64)
    sums: dict[str, np.ndarray] = {}
    for key, label in zip(image_keys(other), np.asarray(other["label"], dtype=np.int64)):
        sums[key] = sums.get(key, 0) + one_hot[label]
    soft = np.asarray(train["soft_label"], dtype=np.float64)
    matched = 0
    for i, key in enumerate(image_keys(train)):
        if key in sums:
            soft[i] = (1 - weight) * soft[i] + weight * sums[key] / sums[key].sum()
            matched += 1
    if not matched:
        raise ValueError(f"second_labels {spec!r}: none of its {len(other)} images is among the {len(train)} training "
                         "images; it must hold the same faces (same image files), e.g. FER2013 beside FER+.")
    logger.info("second_labels %s: %d of %d training faces matched, blended with weight %g", spec, matched, len(train), weight)
    return train.remove_columns("soft_label").add_column("soft_label", soft.astype(np.float32).tolist(), feature=SOFT_LABEL)


def build_datasets(args: DataArguments, seed: int = 42) -> DatasetDict:
    """The training and validation sets: all sources concatenated, each keeping its `source`.

    With `label_mode: votes` the training split carries `soft_label` (the vote distribution); validation
    never does: it is scored on the majority label.
    """
    sources = load_sources(args.datasets, args.synthetic_per_class, seed)
    if args.label_mode == "votes" and not any("soft_label" in ds.column_names for dd in sources.values() for ds in dd.values()):
        raise ValueError(f"label_mode=votes needs a source with a FER+ `votes` column; none of {args.datasets} has one "
                         "(use label_mode: majority, or a FER+ folder such as ../shared/data/ferplus).")
    train, valid = [], []
    for name, dd in sources.items():
        tr, va = validation_of(dd, args.validation_split, seed, name)
        tr = with_targets(tr, args.label_mode, name)
        # blending in a second label source needs targets as distributions, also under label_mode majority
        train.append(one_hot_targets(tr) if args.second_labels and "soft_label" not in tr.column_names else tr)
        valid.append(with_targets(va, "majority", name))
    out = DatasetDict(train=concatenate_datasets(train), validation=concatenate_datasets(valid))
    if args.second_labels:
        out["train"] = blend_second_labels(out["train"], args.second_labels, args.second_label_weight, seed)
    out["train"] = _truncate(out["train"], args.max_train_samples, seed)
    out["validation"] = _truncate(out["validation"], args.max_eval_samples, seed)
    for split, ds in out.items():
        if len(ds) == 0:
            raise ValueError(f"the {split} split is empty after harmonisation (datasets: {args.datasets}).")
    return out


def class_counts(dd: DatasetDict) -> dict:
    """`{split: {source: {class: count}}}` — the seed's distribution table, as data."""
    table = {}
    for split, ds in dd.items():
        labels = np.asarray(ds.with_format(None)["label"])
        sources = np.asarray(ds.with_format(None)["source"])
        table[split] = {
            src: dict(zip(CLASSES, np.bincount(labels[sources == src], minlength=len(CLASSES)).tolist()))
            for src in sorted(set(sources.tolist()))
        }
    return table


def format_class_counts(table: dict) -> str:
    """The class-count table as text: one row per split and source, one column per class."""
    width = max([len(s) for split in table.values() for s in split] + [12])
    head = f"{'split':<10} {'source':<{width}} " + " ".join(f"{c[:9]:>9}" for c in CLASSES) + f" {'total':>8}"
    lines = [head, "-" * len(head)]
    for split, per_source in table.items():
        for src, counts in per_source.items():
            row = " ".join(f"{counts[c]:>9}" for c in CLASSES)
            lines.append(f"{split:<10} {src:<{width}} {row} {sum(counts.values()):>8}")
    return "\n".join(lines)
