"""Where the ViT looked: attention rollout over the blocks, drawn as a heat map on each face.

Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020): per block,
average the heads' attention, add the identity for the residual path, renormalise the rows, and
multiply the blocks' matrices; the class token's row of the product is how much each patch fed the
prediction. The attention is recomputed from each block's own `qkv` projection on its input rather
than captured with hooks or by switching off fused attention, so the shared serving model is never
mutated and concurrent requests cannot leak into each other's maps.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image


def _block_attention(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax attention (B, heads, T, T) of a timm `Attention` module on its (normed) input."""
    b, t, _ = x.shape
    qkv = attn.qkv(x).reshape(b, t, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, _ = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


def block_attentions(vit: torch.nn.Module, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    """Each block's attention for a batch, running the timm VisionTransformer's own layers in order."""
    needed = ("patch_embed", "_pos_embed", "blocks", "num_prefix_tokens")
    if not all(hasattr(vit, name) for name in needed):
        raise TypeError(f"attention rollout needs a timm VisionTransformer, got {type(vit).__name__}")
    out = []
    with torch.inference_mode():
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(pixel_values))))
        for block in vit.blocks:
            out.append(_block_attention(block.attn, block.norm1(x)))
            x = block(x)
    return out


def attention_rollout(vit: torch.nn.Module, pixel_values: torch.Tensor) -> np.ndarray:
    """(N, grid_h, grid_w) maps in [0, 1]: how much each patch reaches the class token (or, without one,
    the average token) through all blocks."""
    attentions = block_attentions(vit, pixel_values)
    tokens = attentions[0].shape[-1]
    rollout = torch.eye(tokens).expand(pixel_values.shape[0], tokens, tokens)
    for attention in attentions:
        a = attention.mean(dim=1) + torch.eye(tokens)  # identity: the residual connection
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
    prefix = vit.num_prefix_tokens
    rows = rollout[:, 0, prefix:] if prefix else rollout[:, prefix:, prefix:].mean(dim=1)
    grid = vit.patch_embed.grid_size
    maps = rows.reshape(-1, *grid).numpy()
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    return (maps - lo) / np.where(span > 0, span, 1)


def face_maps(recognizer, faces) -> list[np.ndarray]:
    """Rollout maps for faces returned by `EmotionRecognizer.recognize` (from the crops it classified)."""
    if not faces:
        return []
    vit = getattr(recognizer.model, "timm_model", recognizer.model)
    return list(attention_rollout(vit, recognizer.pixel_values([face.crop for face in faces])))


def overlay(image: Image.Image, faces, maps, alpha: float = 0.45) -> Image.Image:
    """`image` with each face's map blended (jet colours) over its crop box. An aligned (rotated) crop's
    map is drawn upright, which is only approximate."""
    canvas = np.asarray(image.convert("RGB")).copy()
    for face, heat in zip(faces, maps):
        left, top, right, bottom = face.crop_box
        heat = cv2.resize(np.float32(heat), (right - left, bottom - top), interpolation=cv2.INTER_CUBIC)
        colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)[:, :, ::-1]
        region = canvas[top:bottom, left:right].astype(np.float32)
        canvas[top:bottom, left:right] = np.uint8((1 - alpha) * region + alpha * colour)
    return Image.fromarray(canvas)
