"""The model: TimmWrapper around timm, saved folders that load with Auto classes and pipeline."""

import time

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline

from fer_hf.data.labels import CLASSES
from fer_hf.models.modeling import ModelArguments, build_model, preprocessing_config
from fer_hf.utils.offline import HubUnreachableError

TINY = {"init_from": "none", "image_size": 32, "patch_size": 8, "model_args": '{"depth": 1}'}


def test_saved_folder_loads_with_auto_and_pipeline(tmp_path):
    model = build_model(ModelArguments(**TINY)).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert [loaded.config.id2label[i] for i in range(7)] == list(CLASSES)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=x).logits, loaded(pixel_values=x).logits, atol=1e-6)
    clf = pipeline("image-classification", model=str(tmp_path), device="cpu")
    out = clf(Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)), top_k=7)
    assert sorted(o["label"] for o in out) == sorted(CLASSES)
    assert abs(sum(o["score"] for o in out) - 1) < 1e-4  # softmax, not a multi-label sigmoid


def test_image_size_and_regularisation_are_config():
    model = build_model(ModelArguments(init_from="none", image_size=112, drop_path_rate=0.2, model_args='{"depth": 2}'))
    assert model.timm_model.pos_embed.shape[1] == (112 // 16) ** 2 + 1
    assert preprocessing_config(model.config)["image_size"] == 112
    assert model.config.model_args["drop_path_rate"] == 0.2
    assert model(pixel_values=torch.randn(1, 3, 112, 112)).logits.shape == (1, 7)


def test_conv_stem_vit_round_trips(tmp_path):
    # The FER+ student: ViT-Tiny's blocks behind timm's ResNet stem; 2x2 patches of the stem's 12x12 map at 48 px.
    model = build_model(ModelArguments(architecture="vit_tiny_r_s16_p8_224", init_from="none", image_size=48,
                                       patch_size=2, model_args='{"depth": 1}')).eval()
    assert model.timm_model.patch_embed.grid_size == (6, 6) and model.timm_model.embed_dim == 192
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=x).logits, loaded(pixel_values=x).logits, atol=1e-6)


def test_vit_base_by_name():
    model = build_model(ModelArguments(architecture="vit_base_patch16_224", init_from="none", model_args='{"depth": 1}'))
    assert model.timm_model.embed_dim == 768 and model.config.num_labels == 7


def test_init_from_local_checkpoint_resamples_position_embeddings(tmp_path):
    source = build_model(ModelArguments(**TINY))
    source.save_pretrained(tmp_path)  # a TimmWrapper folder: keys prefixed with timm_model.
    target = build_model(ModelArguments(**{**TINY, "image_size": 48, "init_from": str(tmp_path)}))
    assert target.timm_model.pos_embed.shape[1] == (48 // 8) ** 2 + 1
    assert torch.equal(target.timm_model.blocks[0].attn.qkv.weight, source.timm_model.blocks[0].attn.qkv.weight)
    # a plain timm state-dict file works too
    torch.save(source.timm_model.state_dict(), tmp_path / "timm.pth")
    again = build_model(ModelArguments(**{**TINY, "init_from": str(tmp_path / "timm.pth")}))
    assert torch.equal(again.timm_model.patch_embed.proj.weight, source.timm_model.patch_embed.proj.weight)


def test_hub_init_fails_fast_offline():
    start = time.monotonic()
    with pytest.raises(HubUnreachableError) as err:
        build_model(ModelArguments(init_from="timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"))
    assert time.monotonic() - start < 5
    assert "init_from none" in str(err.value) and "local" in str(err.value)


def test_missing_local_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="init_from"):
        build_model(ModelArguments(init_from=str(tmp_path)))


def test_cnn_architecture_gets_no_vit_arguments(tmp_path):
    model = build_model(ModelArguments(architecture="resnet10t", init_from="none", image_size=48))
    assert "img_size" not in model.config.model_args
    assert preprocessing_config(model.config)["image_size"] == 48
    with pytest.raises(ValueError, match="patch_size"):
        build_model(ModelArguments(architecture="resnet10t", init_from="none", patch_size=8))
