"""The int8 ViT's stem for the static Space's own kernels (static_space/vit.c): what comes before the first block.

`stem_program(onnx_path, tokens, image_size)` walks the exported graph back from the blocks' input (`tokens`:
[class token; patches] + position embedding) and returns the steps vit.js runs, and stem.bin (their weights):
- `conv`: DynamicQuantizeLinear of the input, then ConvInteger (k x k, stride s, zero padding), times the two
  scales, plus the bias: the patch embedding, and the 7x7 convolution of the hybrid R+ViT's ResNet stem, whose
  standardised, quantised weights the graph computes from constants on every call (here once, by onnxruntime);
- `groupnorm_relu`: the ResNet stem's GroupNorm (InstanceNormalization over groups, then gamma and beta) and ReLU;
- `maxpool`: its max pooling, 'same' padding with -inf;
then the class token and the position embedding. Paddings are read from the graph at `image_size` (onnxruntime
evaluates its shape arithmetic once). Another stem raises NotOwnStem: onnxruntime-web then runs it (stem.onnx).
"""

from __future__ import annotations

from pathlib import Path


class NotOwnStem(ValueError):
    """A stem vit.c does not run."""


def stem_program(onnx_path: Path, tokens: str, image_size: int) -> tuple[dict, bytes]:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    image = graph.input[0].name
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    blob: list[bytes] = []

    def node(name, *ops):
        n = producer.get(name)
        if n is None or n.op_type not in ops:
            raise NotOwnStem(f"{name} does not come from {' or '.join(ops)}")
        return n

    def attrs(n):
        return {a.name: helper.get_attribute_value(a) for a in n.attribute}

    wanted: dict[str, None] = {}  # tensors to evaluate once with onnxruntime (weights the graph computes, paddings)

    def later(name):
        if name not in inits:
            wanted[name] = None
        return name

    def store(array, dtype) -> dict:
        array = np.ascontiguousarray(array, dtype=dtype)
        at = sum(len(b) for b in blob)
        blob.append(array.tobytes())
        return {"bin": at, "dtype": np.dtype(dtype).name, "shape": list(array.shape)}

    # tokens = Concat(Expand(cls_token), Transpose(Reshape(patch embedding))) + pos_embed
    add = node(tokens, "Add")
    pos = next((i for i in add.input if i in inits), None)
    concat = node(next(i for i in add.input if i != pos), "Concat")
    if pos is None or attrs(concat).get("axis") != 1 or len(concat.input) != 2:
        raise NotOwnStem("the tokens are not [class token; patches] + position embedding")
    cls = node(concat.input[0], "Expand").input[0]
    if cls not in inits:
        raise NotOwnStem("the class token is not a stored tensor")
    transpose = node(concat.input[1], "Transpose")
    if list(attrs(transpose)["perm"]) != [0, 2, 1]:
        raise NotOwnStem("the patches are not the flattened map, transposed")
    x = node(transpose.input[0], "Reshape").input[0]

    steps = []  # from the last back to the first
    while x != image:
        n = node(x, "Add", "Mul", "MaxPool", "Relu", "Cast")
        if n.op_type == "Cast" and n.input[0] == image:
            break
        if n.op_type in ("Add", "Mul"):  # a quantised convolution: (Cast(ConvInteger) * scales) [+ bias]
            bias = None
            if n.op_type == "Add":  # the bias, stored or reshaped from a stored tensor
                muls = [i for i in n.input if i in producer and producer[i].op_type == "Mul"]
                if len(muls) != 1:
                    raise NotOwnStem(f"{n.name}: not a convolution plus a bias")
                b = next(i for i in n.input if i != muls[0])
                b = b if b in inits else node(b, "Reshape").input[0]
                if b not in inits:
                    raise NotOwnStem(f"{n.name}: the bias is not a stored tensor")
                bias, n = inits[b].ravel(), producer[muls[0]]
            cast = next(producer[i] for i in n.input if i in producer and producer[i].op_type == "Cast")
            conv = node(cast.input[0], "ConvInteger")
            scales = node(next(i for i in n.input if i != cast.output[0]), "Mul")
            quant = node(conv.input[0], "DynamicQuantizeLinear")
            w_scale = next(i for i in scales.input if i != quant.output[1])
            a = attrs(conv)
            if a.get("group", 1) != 1 or set(a.get("dilations", [1, 1])) != {1} or len(set(a["strides"])) != 1 \
                    or len(set(a["kernel_shape"])) != 1 or any(a.get("pads", [0] * 4)):
                raise NotOwnStem(f"{conv.name}: not a square, ungrouped convolution")
            src, pad = quant.input[0], None
            if producer.get(src) is not None and producer[src].op_type == "Pad":
                pad = producer[src]
                if attrs(pad).get("mode", b"constant") != b"constant" or (len(pad.input) > 2 and pad.input[2] and
                                                                           np.any(inits.get(pad.input[2], 0) != 0)):
                    raise NotOwnStem(f"{pad.name}: not zero padding")
                later(pad.input[1])
                src = pad.input[0]
            steps.append({"op": "conv", "k": int(a["kernel_shape"][0]), "s": int(a["strides"][0]),
                          "weight": later(conv.input[1]), "w_zero_point": later(conv.input[3]),
                          "scale": later(w_scale), "bias": bias, "pads": pad.input[1] if pad else None})
            x = src
        elif n.op_type == "MaxPool":
            a, pad = attrs(n), node(n.input[0], "Pad")
            if len(set(a["kernel_shape"])) != 1 or len(set(a["strides"])) != 1 or any(a.get("pads", [0] * 4)) \
                    or a.get("ceil_mode", 0):
                raise NotOwnStem(f"{n.name}: not a square max pooling")
            steps.append({"op": "maxpool", "k": int(a["kernel_shape"][0]), "s": int(a["strides"][0]),
                          "pads": later(pad.input[1]), "fill": later(pad.input[2])})
            x = pad.input[0]
        else:  # Relu(GroupNorm): Add(Mul(Reshape(InstanceNormalization(Reshape(x))), gamma), beta)
            beta_add = node(n.input[0], "Add")
            gamma_mul = node(next(i for i in beta_add.input if i not in inits), "Mul")
            inorm = node(node(next(i for i in gamma_mul.input if i not in inits), "Reshape").input[0],
                         "InstanceNormalization")
            grouped = node(inorm.input[0], "Reshape")
            beta = next(i for i in beta_add.input if i in inits)
            gamma = next(i for i in gamma_mul.input if i in inits)
            steps.append({"op": "groupnorm_relu", "groups": later(grouped.input[1]), "scale": later(inorm.input[1]),
                          "shift": later(inorm.input[2]), "eps": float(attrs(inorm).get("epsilon", 1e-5)),
                          "gamma": inits[gamma].ravel(), "beta": inits[beta].ravel()})
            x = grouped.input[0]
    steps.reverse()

    # the computed tensors, once, at this image size
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = list(wanted)
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip(names, session.run(names, {image: np.zeros((1, 3, image_size, image_size), np.float32)})))
    values.update(inits)

    c, h, w, out = 3, image_size, image_size, []
    for st in steps:
        if st["op"] == "conv":
            k, s = st["k"], st["s"]
            zero_point = values[st["w_zero_point"]].astype(np.int32).reshape(-1, 1, 1, 1)
            weight = values[st["weight"]].astype(np.int32) - zero_point
            cout = weight.shape[0]
            if cout % 8:  # vit.c's product writes rows of 8-column blocks
                raise NotOwnStem(f"a convolution with {cout} output channels")
            if weight.shape[1:] != (c, k, k):
                raise NotOwnStem(f"a convolution's weights are {weight.shape}, its input has {c} channels")
            pads = [int(v) for v in np.ravel(values[st["pads"]])] if st["pads"] else [0] * 8
            top, left, bottom, right = pads[2], pads[3], pads[6], pads[7]
            if any(pads[i] for i in (0, 1, 4, 5)):
                raise NotOwnStem("padding over batch or channels")
            oh, ow = (h + top + bottom - k) // s + 1, (w + left + right - k) // s + 1
            scale = np.ravel(values[st["scale"]]).astype(np.float32)
            bias = st["bias"] if st["bias"] is not None else np.zeros(cout, np.float32)
            out.append({"op": "conv", "cin": c, "cout": cout, "k": k, "s": s, "pad": [top, left], "in": [h, w],
                        "out": [oh, ow], "weight": store(weight.reshape(cout, -1).T, np.int16),
                        "scale": store(scale, np.float32), "bias": store(bias, np.float32)})
            c, h, w = cout, oh, ow
        elif st["op"] == "maxpool":
            k, s = st["k"], st["s"]
            pads = [int(v) for v in np.ravel(values[st["pads"]])]
            if not np.isneginf(np.ravel(values[st["fill"]])[0]) or any(pads[i] for i in (0, 1, 4, 5)):
                raise NotOwnStem("max pooling padded with something else than -inf")
            top, left, bottom, right = pads[2], pads[3], pads[6], pads[7]
            oh, ow = (h + top + bottom - k) // s + 1, (w + left + right - k) // s + 1
            out.append({"op": "maxpool", "c": c, "k": k, "s": s, "pad": [top, left], "in": [h, w], "out": [oh, ow]})
            h, w = oh, ow
        else:
            groups = [int(v) for v in np.ravel(values[st["groups"]])]
            if len(groups) != 3 or groups[2] != -1 or c % groups[1] or np.any(values[st["scale"]] != 1) \
                    or np.any(values[st["shift"]] != 0):
                raise NotOwnStem(f"a group norm reshaped to {groups}")
            out.append({"op": "groupnorm_relu", "c": c, "groups": groups[1], "eps": st["eps"],
                        "gamma": store(st["gamma"], np.float32), "beta": store(st["beta"], np.float32)})
    position = inits[pos].reshape(-1, c)
    if position.shape[0] != h * w + 1 or inits[cls].size != c:
        raise NotOwnStem(f"{h * w} patches of {c} values, position embedding {inits[pos].shape}")
    program = {"file": "stem.bin", "image_size": image_size, "steps": out, "patches": h * w,
               "cls": store(inits[cls].ravel(), np.float32), "pos": store(position, np.float32)}
    return program, b"".join(blob)
