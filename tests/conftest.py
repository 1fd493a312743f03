"""Shared fixtures. Tests are offline (HF_HUB_OFFLINE=1 before any Hugging Face import) and small."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.append(str(ROOT / "scripts"))  # appended: scripts/evaluate.py must not shadow the `evaluate` package
sys.path.append(str(ROOT / "benchmarks"))  # the measurement harnesses, imported by name like the scripts

# The model every quick test trains: ViT-Tiny's width and heads, one block, 32 px, patch 8.
TINY_MODEL = ["--architecture", "vit_tiny_patch16_224", "--init_from", "none", "--image_size", "32", "--patch_size", "8", "--model_args", '{"depth": 1}']


def save_confident_vit(folder, depth: int):
    """A tiny random ViT (32 px, patch 8) whose head is scaled up so its scores are far from uniform, saved."""
    import torch

    from fer_hf.models.modeling import ModelArguments, build_model

    torch.manual_seed(0)
    model = build_model(ModelArguments(init_from="none", image_size=32, patch_size=8, model_args=f'{{"depth": {depth}}}'))
    with torch.no_grad():
        model.timm_model.head.weight.mul_(40.0)
    model.save_pretrained(str(folder))
    return folder


def random_image(rng, size=40, mode="RGB"):
    channels = 3 if mode == "RGB" else 1
    arr = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    return PILImage.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode)


@pytest.fixture
def tiny_dataset():
    """A FER2013-scheme dataset (its own names and order), 4 images per class, train + validation."""
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    rng = np.random.default_rng(0)
    features = Features({"image": Image(), "label": ClassLabel(names=names)})

    def split(n):
        labels = [i for i in range(len(names)) for _ in range(n)]
        return Dataset.from_dict({"image": [random_image(rng, 48, "L") for _ in labels], "label": labels}, features=features)

    return DatasetDict(train=split(4), validation=split(2))


@pytest.fixture
def parquet_folder(tmp_path, tiny_dataset):
    """`tiny_dataset` laid out like a Hub dataset repo (data/<split>-00000-of-00001.parquet)."""
    folder = tmp_path / "ferlike"
    (folder / "data").mkdir(parents=True)
    for split, ds in tiny_dataset.items():
        ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


@pytest.fixture
def imagefolder(tmp_path):
    """Class folders with alias names (angry, happy, sad, ...) and one corrupt file."""
    rng = np.random.default_rng(1)
    root = tmp_path / "imgs"
    for name in ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]:
        (root / name).mkdir(parents=True)
        for i in range(4):
            random_image(rng, 40).save(root / name / f"{i}.png")
    (root / "happy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


@pytest.fixture
def suite_root(tmp_path):
    """FER+-like validation (all seven classes) and two dev sets laid out as the suite expects; CK+ without neutral."""
    from fer_hf.data.labels import CLASSES

    rng = np.random.default_rng(3)
    root = tmp_path / "data"
    layout = {"ferplus/train": CLASSES, "ferplus/validation": CLASSES, "crossdomain_dev/sfew": CLASSES,
              "crossdomain_dev/ckplus48": [c for c in CLASSES if c != "neutral"]}
    for folder, classes in layout.items():
        for name in classes:
            (root / folder / name).mkdir(parents=True)
            for i in range(2):
                random_image(rng, 48).save(root / folder / name / f"{i}.png")
    return root
