"""The int8 ViT's blocks for the static Space's own WebAssembly kernels (static_space/vit.c, run by vit.js).

`write_vit_program(onnx_path, site, image_size)` reads the graph fer_hf.export.onnx writes for a timm ViT
(dynamic int8 quantisation) and, when every block is the plain pre-norm block (layer norm, qkv, softmax attention,
projection, layer norm, fc1, exact GELU, fc2, residual adds; no layer scale or q/k norm) and the head reads the
normed class token, writes:
- vit.json: the block count, width, heads, attention scale, and where each weight (int8), weight scale, bias and
  norm parameter lies in model.onnx (byte offsets of the tensors' raw data), so that nothing is shipped twice;
- the stem (patch embedding, class token, position embedding): as steps for the same kernels and their weights in
  stem.bin (fer_hf.export.vit_stem), or, for a stem those do not cover, stem.onnx (the graph up to the first block)
  for onnxruntime-web.
Any other graph (a CNN, the fp32 export, another ViT variant) returns the reason, and the page runs the whole
model.onnx in onnxruntime-web as before.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from . import vit_stem  # through the module, not its names: a test replaces vit_stem.stem_program

# What one block of the exported int8 graph holds (torch's scaled_dot_product_attention export: q and k each times
# sqrt(1/sqrt(head_dim)), three Sqrt nodes; GELU as x * (erf(x / sqrt 2) + 1) * 0.5).
BLOCK_OPS = {"LayerNormalization": 2, "MatMulInteger": 4, "MatMul": 2, "Softmax": 1, "Erf": 1, "Sqrt": 3}
LINEARS = {"attn/qkv": "qkv", "attn/proj": "proj", "mlp/fc1": "fc1", "mlp/fc2": "fc2"}


class NotAViT(ValueError):
    """The graph is not one vit.c runs; the page runs the whole model in onnxruntime-web."""


def _program(onnx_path: Path) -> tuple[dict, str, str]:
    """(vit.json's content, the graph's input, the tokens tensor the blocks start from)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    data, graph = onnx_path.read_bytes(), model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def value(name):
        t = stored(name)
        if t is None:
            raise NotAViT(f"{name} is computed, not a constant")
        return numpy_helper.to_array(t)

    def stored(name: str):
        """The TensorProto behind `name`: an initializer, a Constant, or either through Identity nodes (the
        exporter shares equal tensors, e.g. the layer norms of an untrained model)."""
        node = producer.get(name)
        if name in inits or node is None:
            return inits.get(name)
        if node.op_type == "Identity":
            return stored(node.input[0])
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            return node.attribute[0].t
        return None

    def ref(name: str, dtype: str) -> dict:
        t = stored(name)
        if t is None or numpy_helper.to_array(t).dtype != np.dtype(dtype):
            raise NotAViT(f"{name} is not a stored {dtype} tensor")
        # raw_data, or packed float_data: the tensor's little-endian bytes lie in the file as they are
        at = data.find(numpy_helper.to_array(t).astype(np.dtype(dtype).newbyteorder("<")).tobytes())
        if at < 0:
            raise NotAViT(f"{name}'s bytes were not found in {onnx_path.name}")
        return {"at": at, "shape": [int(d) for d in t.dims], "dtype": dtype}

    def only(name, op):
        nodes = readers.get(name, [])
        if len(nodes) != 1 or nodes[0].op_type != op:
            raise NotAViT(f"{name} is not read by one {op} node")
        return nodes[0]

    def linear(mm) -> tuple[dict, str]:
        """A MatMulInteger's weight, weight scale and bias, and the float output (after the bias)."""
        _, w, _, w_zp = mm.input
        if np.any(value(w_zp) != 0):
            raise NotAViT(f"{mm.name}: weights with a zero point")
        quant = producer.get(mm.input[0])
        if quant is None or quant.op_type != "DynamicQuantizeLinear":
            raise NotAViT(f"{mm.name}: its input is not quantised dynamically")
        cast = only(mm.output[0], "Cast")
        out = only(cast.output[0], "Mul")  # the int32 sums times (input scale * weight scale) ...
        scales = producer[next(i for i in out.input if i != cast.output[0])]
        w_scale = next(i for i in scales.input if i != quant.output[1])
        add = only(out.output[0], "Add")  # ... plus the bias
        bias = next(i for i in add.input if i != out.output[0])
        return ({"weight": ref(w, "int8"), "scale": ref(w_scale, "float32"), "bias": ref(bias, "float32")},
                add.output[0])

    def norm(node) -> dict:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("axis", -1) != -1 or len(node.input) < 3:
            raise NotAViT(f"{node.name}: not a layer norm over the last axis with a bias")
        return {"weight": ref(node.input[1], "float32"), "bias": ref(node.input[2], "float32"),
                "epsilon": float(attrs.get("epsilon", 1e-5))}

    blocks: dict[int, list] = {}
    for node in graph.node:
        m = re.search(r"/blocks\.(\d+)/", node.name)
        if m:
            blocks.setdefault(int(m.group(1)), []).append(node)
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise NotAViT("no numbered transformer blocks")
    program_blocks, heads, dim, tokens = [], None, None, None
    x = None  # the residual stream entering the block
    for i in range(len(blocks)):
        nodes = blocks[i]
        counts = Counter(n.op_type for n in nodes)
        if any(counts[op] != n for op, n in BLOCK_OPS.items()):
            raise NotAViT(f"block {i} is not a plain pre-norm block ({dict(counts)})")
        if any(re.search(r"/(ls1|ls2|q_norm|k_norm)/", n.name) for n in nodes):
            raise NotAViT(f"block {i} has layer scale or q/k norm")
        lns = sorted((n for n in nodes if n.op_type == "LayerNormalization"), key=lambda n: n.name)
        if x is None:
            x = tokens = lns[0].input[0]
        if lns[0].input[0] != x:
            raise NotAViT(f"block {i} does not start from the previous block's output")
        block = {"norm1": norm(lns[0]), "norm2": norm(lns[1])}
        outs = {}
        for mm in (n for n in nodes if n.op_type == "MatMulInteger"):
            kind = next((v for k, v in LINEARS.items() if f"/{k}/" in mm.name), None)
            if kind is None:
                raise NotAViT(f"{mm.name}: an unknown linear layer")
            block[kind], outs[kind] = linear(mm)
        reshape = only(outs["qkv"], "Reshape")  # [batch, tokens, 3, heads, head_dim]
        shape = [int(v) for v in np.ravel(value(reshape.input[1]))] if stored(reshape.input[1]) is not None \
            else [int(np.ravel(value(n))[0]) for n in producer[reshape.input[1]].input[2:]]
        three, heads, head_dim = shape[-3:]
        dim = block["qkv"]["weight"]["shape"][0]
        if three != 3 or heads * head_dim != dim or dim % 8:
            raise NotAViT(f"block {i}: qkv reshaped to {shape}")
        residual1 = only(outs["proj"], "Add")
        if x not in residual1.input or lns[1].input[0] != residual1.output[0]:
            raise NotAViT(f"block {i}: the attention's residual add is not where expected")
        residual2 = only(outs["fc2"], "Add")
        if residual1.output[0] not in residual2.input:
            raise NotAViT(f"block {i}: the MLP's residual add is not where expected")
        x = residual2.output[0]
        program_blocks.append(block)
    final = only(x, "LayerNormalization")
    gather = only(final.output[0], "Gather")
    attrs = {a.name: helper.get_attribute_value(a) for a in gather.attribute}
    if attrs.get("axis", 0) != 1 or int(np.ravel(value(gather.input[1]))[0]) != 0:
        raise NotAViT("the head does not read the class token")
    head_mm = only(only(gather.output[0], "DynamicQuantizeLinear").output[0], "MatMulInteger")
    head, logits = linear(head_mm)
    if logits != graph.output[0].name:
        raise NotAViT("the head's output is not the graph's output")
    head_dim = dim // heads
    qk_scale = float(np.sqrt(np.float32(1.0) / np.sqrt(np.float32(head_dim), dtype=np.float32), dtype=np.float32))
    program = {"source": onnx_path.name, "tokens": tokens, "dim": dim, "heads": heads,
               "qk_scale": qk_scale, "classes": head["weight"]["shape"][1], "blocks": program_blocks,
               "norm": norm(final), "head": head}
    return program, graph.input[0].name, tokens


def write_vit_program(onnx_path: Path, site: Path, image_size: int) -> str | None:
    """Write vit.json into `site` for the page's own kernels, with the stem as stem.bin (vit_stem.py) or, for a
    stem they do not run, as stem.onnx for onnxruntime-web; None, or why the whole model stays in onnxruntime-web."""
    import onnx
    from onnx.utils import Extractor

    try:
        program, inp, tokens = _program(Path(onnx_path))
    except (NotAViT, KeyError, StopIteration, IndexError) as err:
        return f"{type(err).__name__}: {err}" if not isinstance(err, NotAViT) else str(err)
    try:
        program["stem"], blob = vit_stem.stem_program(Path(onnx_path), tokens, image_size)
        (site / "stem.bin").write_bytes(blob)
    except (vit_stem.NotOwnStem, KeyError, StopIteration, IndexError) as err:
        program["stem"] = {"onnx": "stem.onnx", "why": str(err)}
        stem = Extractor(onnx.load(str(onnx_path))).extract_model([inp], [tokens])
        onnx.save(stem, str(site / "stem.onnx"))
    (site / "vit.json").write_text(json.dumps(program) + "\n")
    return None
