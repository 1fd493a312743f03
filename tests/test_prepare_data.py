"""scripts/prepare_data.py: every raw format -> Hub-layout folder that reloads, harmonises by name and trains.

Fixtures are generated here (a few rows/images per format). Each source gets a different number of
images per class id, so the canonical class counts after harmonisation pin down the id -> name map.
"""

import csv
import io
import json
import struct
import zlib
from collections import Counter

import numpy as np
import prepare_data
import pytest
import torch
import train
from conftest import ROOT, TINY_MODEL, random_image
from datasets import ClassLabel, Dataset, Features, Value, load_dataset
from datasets import Image as ImageFeature
from PIL import Image

from fer_hf.data.labels import CLASSES, UnknownLabelError
from fer_hf.data.sources import DataArguments, build_datasets, harmonise
from fer_hf.data.transforms import FerTransform
from fer_hf.utils.offline import HubUnreachableError

FER_CANON = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]  # FER2013 ids 0..6
RAF_CANON = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]  # RAF ids 1..7
AFFECTNET_CANON = ["neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger"]  # AffectNet ids 0..6


def prepare(fmt, src, out, *extra):
    return prepare_data.main(["--format", fmt, "--input", str(src), "--output_dir", str(out), *extra])


def harmonised_counts(folder) -> Counter:
    """Canonical class counts over train + validation after fer_hf.data.sources.build_datasets."""
    dd = build_datasets(DataArguments(datasets=[str(folder)], validation_split=0.2))
    return Counter(CLASSES[i] for split in dd.values() for i in split.with_format(None)["label"])


def expected(canon, ids) -> Counter:
    return Counter(canon[i] for i in ids)


def jpeg_bytes(rng, size=(32, 32), **save):
    buf = io.BytesIO()
    random_image(rng, size[0]).resize(size).save(buf, format="JPEG", **save)
    return buf.getvalue()


def write_fer_csv(path, rows):
    """rows: (emotion, Usage[, pixels]) -> fer2013.csv with 48x48 random pixel rows."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for emotion, usage, *pixels in rows:
            w.writerow([emotion, pixels[0] if pixels else " ".join(map(str, rng.integers(0, 256, 48 * 48))), usage])


def test_fer2013_converts_reloads_and_maps_by_name(tmp_path):
    train_ids = [i for i in range(7) for _ in range(i + 1)]  # id k: k+1 rows
    rows = [(i, "Training") for i in train_ids] + [(i, "PublicTest") for i in range(7)] + [(6, "PrivateTest")]
    rows.append((3, "Training", "1 2 3"))  # a broken pixel row: rejected, not fatal
    write_fer_csv(tmp_path / "fer2013.csv", rows)
    out = tmp_path / "fer2013"
    report = prepare("fer2013", tmp_path / "fer2013.csv", out, "--shard_size", "10")
    assert report["splits"] == {"train": 28, "validation": 7, "test": 1} and report["rejected"] == 1
    assert sorted(p.name for p in (out / "data").iterdir())[:3] == [
        "test-00000-of-00001.parquet", "train-00000-of-00003.parquet", "train-00001-of-00003.parquet"]

    dd = load_dataset(str(out))
    assert dd["train"].features["label"].names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert dd["train"]["label"] == train_ids and dd["test"][0]["image"].size == (48, 48)
    assert dd["test"][0]["image"].mode == "L"
    assert harmonised_counts(out) == expected(FER_CANON, train_ids + list(range(7)))  # e.g. id 6 -> neutral
    rejected = list(csv.DictReader(open(out / "rejected.csv")))  # noqa: SIM115
    assert rejected[0]["file"] == f"row {len(rows) - 1}" and "pixel row" in rejected[0]["reason"]
    card = (out / "README.md").read_text()
    assert "class_label" in card and "| train | 28 |" in card and "**1**" in card
    counts = json.loads((out / "class_counts.json").read_text())
    assert counts["validation"]["fer2013"]["neutral"] == 1 and counts["train"]["fer2013"]["neutral"] == 7


FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                  "contempt", "unknown", "NF"]
# (Usage, votes in FERPLUS_HEADER order from `neutral`): one clear majority per emotion, then the drops.
FERPLUS_ROWS = [("Training", [10 if j == k else 0 for j in range(10)]) for k in range(7)] + [
    ("Training", [6, 2, 0, 0, 0, 0, 0, 0, 2, 0]),  # neutral, soft label 0.75 / 0.25
    ("Training", [4, 4, 0, 0, 0, 0, 0, 0, 2, 0]),  # tie neutral/happiness
    ("Training", [1, 0, 0, 0, 0, 0, 0, 0, 9, 0]),  # unknown majority
    ("PublicTest", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # NF (not a face)
    ("PublicTest", [2, 0, 0, 0, 0, 0, 0, 6, 2, 0]),  # contempt majority
    ("PublicTest", [0, 5, 0, 0, 0, 0, 0, 0, 5, 0]),  # tie happiness/unknown
    ("PublicTest", [0, 0, 0, 0, 7, 3, 0, 0, 0, 0]),  # anger
    ("PrivateTest", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # no votes at all
]


def test_ferplus_majority_vote_drops_and_votes(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", [(0, usage) for usage, _ in FERPLUS_ROWS])
    with open(tmp_path / "fer2013new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FERPLUS_HEADER)
        w.writerows([usage, f"fer{i:07d}.png", *votes] for i, (usage, votes) in enumerate(FERPLUS_ROWS))
    out = tmp_path / "ferplus"
    report = prepare("ferplus", tmp_path / "fer2013.csv", out, "--ferplus_votes", str(tmp_path / "fer2013new.csv"))
    assert report["dropped"] == {"tie": 2, "unknown": 1, "NF": 1, "contempt": 1, "no votes": 1}
    assert report["splits"] == {"train": 8, "validation": 1} and report["rejected"] == 0
    assert "| tie | 2 |" in (out / "README.md").read_text()

    dd = load_dataset(str(out))
    assert dd["train"].features["label"].names == ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"]
    assert dd["train"]["file"][7] == "fer0000007.png" and dd["train"]["label"][7] == 0
    assert dd["train"]["votes"][7] == [6, 2, 0, 0, 0, 0, 0, 0, 2, 0]  # the raw counts, FER+ column order
    soft = np.asarray(harmonise(dd["train"], "ferplus")["soft_label"][7])  # unknown votes removed, renormalised
    assert soft[CLASSES.index("neutral")] == pytest.approx(0.75) and soft[CLASSES.index("happiness")] == pytest.approx(0.25)
    assert np.allclose(np.asarray(harmonise(dd["train"], "ferplus")["soft_label"]).sum(1), 1)
    ferplus_canon = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"]
    assert harmonised_counts(out) == Counter(ferplus_canon) + Counter(["neutral", "anger"])


def test_rafdb_one_based_ids_and_missing_files(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "basic"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image" / "aligned").mkdir(parents=True)
    train_ids = [k for k in range(1, 8) for _ in range(k)]  # RAF id k: k images
    lines = [f"train_{n:05d}.jpg {k}" for n, k in enumerate(train_ids, 1)] + [f"test_{n:04d}.jpg {k}" for n, k in enumerate(range(1, 8), 1)]
    for line in lines:
        name = line.split()[0].removesuffix(".jpg")
        (root / "Image" / "aligned" / f"{name}_aligned.jpg").write_bytes(jpeg_bytes(rng))
    lines.append("train_09999.jpg 7")  # listed, but the crop is missing
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "rafdb"
    report = prepare("rafdb", root, out)
    assert report["splits"] == {"train": 28, "test": 7} and report["rejected"] == 1
    assert "FileNotFoundError" in (out / "rejected.csv").read_text()
    dd = load_dataset(str(out))
    assert dd["test"]["file"][0] == "Image/aligned/test_0001_aligned.jpg" and dd["test"]["label"][0] == 0
    assert harmonised_counts(out) == expected(RAF_CANON, [k - 1 for k in train_ids])  # e.g. id 7 -> neutral


def test_affectnet_folders_and_csv(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "affectnet"
    train_ids = [k for k in range(8) for _ in range(k + 1)]  # id k: k+1 images; 7 is contempt
    for split, ids in [("train", train_ids), ("val", range(8))]:
        for n, k in enumerate(ids):
            (root / split / str(k)).mkdir(parents=True, exist_ok=True)
            (root / split / str(k) / f"{n}.jpg").write_bytes(jpeg_bytes(rng))
    report = prepare("affectnet", root, tmp_path / "out")
    assert report["splits"] == {"train": 28, "validation": 7} and report["dropped"] == {"contempt": 9}
    assert load_dataset(str(tmp_path / "out"))["train"].features["label"].names[0] == "neutral"
    assert harmonised_counts(tmp_path / "out") == expected(AFFECTNET_CANON, [k for k in train_ids if k < 7] + list(range(7)))

    # the annotation csv form, with ids or names, paths relative to the csv
    rows = [("train/0/0.jpg", "0"), ("train/1/1.jpg", "happy"), ("train/7/28.jpg", "7"), ("val/3/3.jpg", "surprise")]
    (root / "labels.csv").write_text("pth,label\n" + "".join(f"{p},{lab}\n" for p, lab in rows))
    report = prepare("affectnet", root / "labels.csv", tmp_path / "csv")
    assert report["splits"] == {"train": 2, "validation": 1} and report["dropped"] == {"contempt": 1}
    assert harmonised_counts(tmp_path / "csv") == Counter(["neutral", "happiness", "surprise"])  # id 0 -> neutral


def test_imagefolder_unknown_class_names_are_listed(tmp_path):
    for name in ["happy", "grumpy", "bored"]:
        (tmp_path / "faces" / name).mkdir(parents=True)
        random_image(np.random.default_rng(0), 8).save(tmp_path / "faces" / name / "a.png")
    with pytest.raises(UnknownLabelError, match="bored.*grumpy"):
        prepare("imagefolder", tmp_path / "faces", tmp_path / "out")


def crafted_bomb() -> bytes:
    """A real PNG whose header claims 20000x20000 pixels: over PIL's decompression-bomb limit."""
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", 20000, 20000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def seed_bad_files(folder, rng):
    """Every kind of awkward file: {name: kept?}."""
    folder.mkdir(parents=True)
    good = jpeg_bytes(rng, (64, 64))
    (folder / "good.jpg").write_bytes(good)
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    (folder / "bomb.png").write_bytes(crafted_bomb())
    Image.new("RGB", (1, 1)).save(folder / "tiny.png")
    Image.fromarray((np.arange(40 * 40).reshape(40, 40) * 40).astype(np.uint16)).save(folder / "deep16.png")
    Image.new("CMYK", (40, 40), (0, 128, 255, 0)).save(folder / "cmyk.jpg")
    random_image(rng, 40).convert("P").save(folder / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    random_image(rng, 40).resize((40, 60)).save(folder / "rotated.jpg", exif=exif)
    return {"good.jpg": True, "truncated.jpg": False, "empty.jpg": False, "text.jpg": False, "bomb.png": False,
            "tiny.png": False, "deep16.png": True, "cmyk.jpg": True, "palette.png": True, "rotated.jpg": True}


def test_bad_files_rejected_odd_ones_converted_and_kept(tmp_path):
    kinds = seed_bad_files(tmp_path / "faces" / "happy", np.random.default_rng(4))
    random_image(np.random.default_rng(5), 40).save(tmp_path / "faces" / "happy" / "..hidden.png")  # ignored
    (tmp_path / "faces" / "happy" / ".DS_Store").write_bytes(b"\0")
    out = tmp_path / "out"
    report = prepare("imagefolder", tmp_path / "faces", out)
    rejected = {row["file"].split("/")[-1]: row["reason"] for row in csv.DictReader(open(out / "rejected.csv"))}  # noqa: SIM115
    assert set(rejected) == {k for k, kept in kinds.items() if not kept}
    assert "DecompressionBomb" in rejected["bomb.png"] and "too small" in rejected["tiny.png"]
    assert report["rejected"] == 5 and report["converted"] == 4 and "**5**" in (out / "README.md").read_text()

    ds = load_dataset(str(out), split="train").cast_column("image", ImageFeature(decode=False))
    stored = {f.split("/")[-1]: Image.open(io.BytesIO(img["bytes"])) for f, img in zip(ds["file"], ds["image"])}
    assert set(stored) == {k for k, kept in kinds.items() if kept}
    assert stored["deep16.png"].mode == "L" and stored["deep16.png"].format == "PNG"
    assert stored["cmyk.jpg"].mode == "RGB" and stored["cmyk.jpg"].format == "JPEG"
    assert stored["palette.png"].mode == "RGB"
    assert stored["rotated.jpg"].size == (60, 40) and stored["rotated.jpg"].getexif().get(0x0112, 1) == 1
    ds.set_transform(FerTransform(32, train=False))
    assert all(ds[i]["pixel_values"] is not None for i in range(len(ds)))  # training never meets a bad image


def test_bare_integer_labels_name_prepare_data_and_a_format():
    ds = Dataset.from_dict({"image": [None], "label": [3]},
                           features=Features({"image": ImageFeature(), "label": Value("int64")}))
    with pytest.raises(ValueError, match=r"prepare_data\.py --format \{fer2013,ferplus,rafdb"):
        harmonise(ds, "rafdb")
    ok = Dataset.from_dict({"image": [None], "label": [0]},
                           features=Features({"image": ImageFeature(), "label": ClassLabel(names=["sad"])}))
    assert harmonise(ok, "x")["label"] == [CLASSES.index("sadness")]


def test_push_to_hub_offline_fails_fast_with_folder_ready(tmp_path):
    (tmp_path / "faces" / "sad").mkdir(parents=True)
    random_image(np.random.default_rng(6), 16).save(tmp_path / "faces" / "sad" / "a.png")
    with pytest.raises(HubUnreachableError, match="is ready"):
        prepare("imagefolder", tmp_path / "faces", tmp_path / "out", "--push_to_hub", "me/faces")
    assert len(load_dataset(str(tmp_path / "out"), split="train")) == 1
    with pytest.raises(FileExistsError, match="overwrite_output_dir"):
        prepare("imagefolder", tmp_path / "faces", tmp_path / "out")


def test_training_on_prepared_folder_with_missing_classes_warns(tmp_path, caplog):
    rng = np.random.default_rng(7)
    for split, n in [("train", 3), ("validation", 1)]:
        for name in ["angry", "happy", "sad", "surprised", "neutral"]:  # no disgust, no fear
            (tmp_path / "faces" / split / name).mkdir(parents=True)
            for i in range(n):
                random_image(rng, 40).save(tmp_path / "faces" / split / name / f"{i}.png")
    prepared = tmp_path / "prepared"
    prepare("imagefolder", tmp_path / "faces", prepared)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train.main([str(ROOT / "scripts/configs/quickstart.yaml"), "--datasets", str(prepared),
                             "--output_dir", str(tmp_path / "run"), *TINY_MODEL, "--max_steps", "2",
                             "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
                             "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no"])
    finally:
        torch.set_num_threads(threads)
    assert result["train_samples"] == 15 and result["skipped_images"] == 0 and "eval_accuracy" in result
    assert "no images of ['disgust', 'fear']" in caplog.text
