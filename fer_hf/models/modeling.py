"""Build and load the model: transformers' `TimmWrapperForImageClassification` around a timm network.

The saved folder (`model.safetensors` + `config.json` with the timm `pretrained_cfg`, seven label
names and the timm `model_args`) loads with `AutoModelForImageClassification.from_pretrained` and
`pipeline("image-classification")` without `trust_remote_code`. Weights are initialised once, here,
from a timm Hub id, a local timm checkpoint (file or folder), or nothing (`init_from: none`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file, save_file
from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

from ..data.labels import CLASSES, ID2LABEL, LABEL2ID
from ..utils.offline import require_hub
from .run_folder import WEIGHT_FILES

logger = logging.getLogger(__name__)

# config.json key of the temperature fitted by `scripts/evaluate.py --temperature auto`. Not "temperature":
# transformers 5 treats that as a generation setting, drops it on load and refuses to save it.
TEMPERATURE_KEY = "calibration_temperature"
DEFAULT_INIT = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"
INIT_WEIGHT_FILES = (*WEIGHT_FILES, "open_clip_pytorch_model.bin")  # what a timm checkpoint folder may hold


@dataclass
class ModelArguments:
    """What network to build and how to initialise it."""

    architecture: str = field(default="vit_tiny_patch16_224", metadata={"help": "Any timm architecture name."})
    init_from: str = field(
        default=DEFAULT_INIT,
        metadata={"help": "timm Hub id, local timm checkpoint file/folder, or 'none' for random init."},
    )
    image_size: int = field(default=224, metadata={"help": "Input size; position embeddings are resampled."})
    patch_size: int | None = field(default=None, metadata={"help": "ViT patch size (default: the architecture's)."})
    drop_rate: float = field(default=0.0, metadata={"help": "Dropout before the classifier."})
    drop_path_rate: float = field(default=0.1, metadata={"help": "Stochastic depth rate."})
    model_args: str | None = field(
        default=None, metadata={"help": "Extra timm.create_model kwargs as JSON, e.g. '{\"depth\": 6}'."}
    )

    def timm_kwargs(self) -> dict:
        """The keyword arguments for `timm.create_model` (stored in config.json as `model_args`)."""
        kwargs = json.loads(self.model_args) if isinstance(self.model_args, str) else dict(self.model_args or {})
        cfg = timm.models.get_pretrained_cfg(self.architecture)
        if cfg is None or cfg.fixed_input_size:  # ViT-style: the input size is built into the network
            kwargs.setdefault("img_size", self.image_size)
            if self.patch_size:
                kwargs.setdefault("patch_size", self.patch_size)
        elif self.patch_size:
            raise ValueError(f"patch_size={self.patch_size} applies to ViT-style models; {self.architecture} has no patches.")
        kwargs.setdefault("drop_rate", self.drop_rate)
        kwargs.setdefault("drop_path_rate", self.drop_path_rate)
        return kwargs


def _resolve_checkpoint(init_from: str) -> str:
    """A local weights file for `init_from` (a file, a folder, or a cached Hub id); raises if out of reach."""
    path = Path(init_from).expanduser()
    if path.is_file():
        return str(path)
    if path.is_dir():
        for name in INIT_WEIGHT_FILES:
            if (path / name).is_file():
                return str(path / name)
        raise FileNotFoundError(f"init_from={init_from!r} is a folder without any of {INIT_WEIGHT_FILES}.")
    repo_id = init_from.removeprefix("hf-hub:")
    if repo_id.count("/") != 1:
        raise FileNotFoundError(f"init_from={init_from!r} is neither a local file/folder nor a Hub id (org/name).")
    from huggingface_hub import try_to_load_from_cache

    for name in INIT_WEIGHT_FILES:  # weights already in the local HF cache need no network at all
        cached = try_to_load_from_cache(repo_id, name)
        if isinstance(cached, str):
            return cached
    require_hub(
        f"init_from={init_from!r}",
        "Train from scratch with `--init_from none` (init_from: none in the YAML), or download the timm "
        "checkpoint elsewhere and pass its local file or folder: `--init_from path/to/model.safetensors`.",
    )
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id, "model.safetensors")


def _strip_wrapper_prefix(file: str) -> str:
    """timm checkpoints have bare keys; a saved TimmWrapper folder prefixes them with `timm_model.`."""
    if not file.endswith(".safetensors"):
        return file
    state = load_file(file)
    if not any(k.startswith("timm_model.") for k in state):
        return file
    state = {k.removeprefix("timm_model."): v for k, v in state.items()}
    out = os.path.join(tempfile.mkdtemp(prefix="fer_hf_init_"), "model.safetensors")
    save_file(state, out)
    return out


def create_timm_model(args: ModelArguments, num_classes: int = len(CLASSES)) -> torch.nn.Module:
    """The timm network with its initial weights (classifier always freshly initialised)."""
    kwargs = args.timm_kwargs()
    if args.init_from.lower() in ("none", "", "scratch", "random"):
        return timm.create_model(args.architecture, pretrained=False, num_classes=num_classes, **kwargs)
    file = _strip_wrapper_prefix(_resolve_checkpoint(args.init_from))
    logger.info("Initialising %s from %s", args.architecture, file)
    # timm drops a classifier of the wrong size and resamples position embeddings for a new image size.
    return timm.create_model(
        args.architecture, pretrained=True, num_classes=num_classes,
        pretrained_cfg_overlay={"file": file, "num_classes": -1}, **kwargs,
    )


def build_model(args: ModelArguments) -> TimmWrapperForImageClassification:
    """A `TimmWrapperForImageClassification` for the seven canonical classes, initialised per `args`."""
    net = create_timm_model(args)
    pretrained_cfg = dict(net.pretrained_cfg)
    # Where timm fetched weights from, and the ImageNet tag/licence/test sizes, do not describe this model.
    for key in ("file", "hf_hub_id", "url", "num_classes", "source", "tag", "license", "test_input_size", "test_crop_pct"):
        pretrained_cfg.pop(key, None)
    pretrained_cfg["input_size"] = [3, args.image_size, args.image_size]
    pretrained_cfg["crop_pct"] = 1.0  # faces are already crops: resize, never centre-crop away the chin
    config = TimmWrapperConfig(
        architecture=args.architecture,
        num_labels=len(CLASSES),
        id2label=dict(ID2LABEL),
        label2id=dict(LABEL2ID),
        model_args=args.timm_kwargs(),
        pretrained_cfg=pretrained_cfg,
    )
    config.fer_init_from = args.init_from
    model = TimmWrapperForImageClassification(config)
    model.timm_model.load_state_dict(net.state_dict())
    return model


def load_pretrained(model_id_or_dir, what: str = "model"):
    """A saved image classifier from a local folder, a Hub model already in the cache, or (online only) the Hub;
    every other case fails fast with what to pass instead. `what` names the input in errors (e.g. "--model")."""
    from transformers import AutoModelForImageClassification

    name = os.fspath(model_id_or_dir)
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            found = sorted(d for d in os.listdir(path) if d.startswith("checkpoint-"))
            hint = (f" It holds checkpoints ({', '.join(found)}): pass one of those folders, or wait for "
                    "training to end.") if found else ""
            raise FileNotFoundError(f"{what} {name!r} is a folder without config.json (no config.json, no saved model: "
                                    f"pass the output_dir of scripts/train.py).{hint}")
        return AutoModelForImageClassification.from_pretrained(path)
    if os.path.exists(path):
        raise ValueError(f"{what} {name!r} is a file; expected a model folder (config.json + weights) or a Hub id")
    if name.count("/") != 1:
        raise FileNotFoundError(f"{what} {name!r}: no such model folder, and not a Hub id of the form org/name.")
    try:
        return AutoModelForImageClassification.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):
        pass  # not in the local cache: the Hub is the only place left
    require_hub(f"{what} {name!r} (no local folder of that name)",
                "Pass a local model folder instead, e.g. outputs/quickstart after "
                "`accelerate launch scripts/train.py scripts/configs/quickstart.yaml`.")
    return AutoModelForImageClassification.from_pretrained(name)


def preprocessing_config(config) -> dict:
    """Image size, mean and std the model was trained with, and whether it reads faces in grey, from its config."""
    cfg = config.pretrained_cfg
    grayscale = bool((getattr(config, "fer_pipeline", None) or {}).get("grayscale", False))
    return {"image_size": int(cfg["input_size"][-1]), "mean": list(cfg["mean"]), "std": list(cfg["std"]),
            "grayscale": grayscale}


def _config_path(model_id_or_dir) -> str:
    from transformers.utils import cached_file

    name = os.fspath(model_id_or_dir)
    return os.path.join(name, "config.json") if os.path.isdir(name) else cached_file(name, "config.json")


def read_temperature(model_id_or_dir) -> float | None:
    """The calibrated temperature in a model's config.json (folder or cached Hub model), else None."""
    path = _config_path(model_id_or_dir)
    with open(path) as f:
        value = json.load(f).get(TEMPERATURE_KEY)
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
        logger.warning("Ignoring %s=%r in %s (expected a positive number).", TEMPERATURE_KEY, value, path)
        return None
    return None if value is None else float(value)


def write_temperature(model_dir, temperature: float) -> str:
    """Store `temperature` in `model_dir/config.json` only (weights untouched); returns the file path."""
    path = os.path.join(os.fspath(model_dir), "config.json")
    with open(path) as f:
        config = json.load(f)
    config[TEMPERATURE_KEY] = float(temperature)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:  # same layout as save_pretrained; replaced atomically, never half-written
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path
