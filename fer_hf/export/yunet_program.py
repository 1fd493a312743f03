"""YuNet for the static Space's own WebAssembly kernels (static_space/yunet.c, run by yunet.js).

`write_yunet_program(src, site)` reads the YuNet 2023mar ONNX file (the one fer_hf ships) and writes its layers in
order as yunet.json and their float32 weights as yunet.bin; any node the kernels lack is an error.
"""

from __future__ import annotations

import json
from pathlib import Path

# The twelve heads cv2.FaceDetectorYN reads: scores, objectness, boxes and landmarks at strides 8, 16 and 32
YUNET_OUTPUTS = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in (8, 16, 32)]


def write_yunet_program(src: Path, site: Path) -> None:
    """YuNet for the page's own WebAssembly kernels (static_space/yunet.c, run by yunet.js): its layers in order as
    yunet.json (each Conv with the ReLU after it, MaxPool, nearest 2x Resize + Add; the Transpose/Reshape/Sigmoid
    tails as output rules) and their float32 weights as yunet.bin. Anything else in the graph is an error: the
    kernels cover the 2023mar float model, the one fer_hf ships."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    names = [o.name for o in graph.output]
    if graph.input[0].name != "input" or sorted(names) != sorted(YUNET_OUTPUTS):
        raise ValueError(f"{src} is not the YuNet 2023mar model (outputs {names}; expected {YUNET_OUTPUTS})")
    weights = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    blob, steps, outputs, done = [], [], {}, set()

    def store(array) -> int:  # offset, in floats, of `array` in yunet.bin
        blob.append(array.ravel())
        return sum(a.size for a in blob[:-1])

    def only_reader(name, op):
        nodes = readers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None

    for node in graph.node:
        if id(node) in done:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            b = weights[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            cout, cin_group, kh, kw = w.shape
            group, strides = attrs.get("group", 1), list(attrs.get("strides", [1, 1]))
            pads, out, relu = list(attrs.get("pads", [0, 0, 0, 0])), node.output[0], only_reader(node.output[0], "Relu")
            if relu:
                done.add(id(relu))
                out = relu.output[0]
            if (kh, kw, group, strides, relu) == (1, 1, 1, [1, 1], None):
                op = "conv1x1"
            elif (kh, kw, group, cin_group, strides, pads) == (3, 3, cout, 1, [1, 1], [1, 1, 1, 1]):
                op = "dw3x3"
            elif (kh, kw, group, strides, pads) == (3, 3, 1, [2, 2], [1, 1, 1, 1]) and relu:
                op = "conv3x3s2_relu"
            else:
                raise ValueError(f"{src}: Conv {node.name} ({w.shape}, group {group}, strides {strides}) has no kernel")
            steps.append({"op": op, "in": node.input[0], "out": out, "w": store(w), "b": store(b),
                          "cin": cin_group * group, "cout": cout, "relu": relu is not None})
        elif node.op_type == "MaxPool" and list(attrs["kernel_shape"]) == list(attrs["strides"]) == [2, 2]:
            steps.append({"op": "maxpool2", "in": node.input[0], "out": node.output[0]})
        elif node.op_type == "Resize" and attrs.get("mode") == b"nearest" and only_reader(node.output[0], "Add"):
            add = only_reader(node.output[0], "Add")  # YuNet's FPN: upsample 2x (floor) and add the finer map
            done.add(id(add))
            big = next(name for name in add.input if name != node.output[0])
            steps.append({"op": "upsample2_add", "small": node.input[0], "big": big, "out": add.output[0]})
        elif node.op_type == "Transpose" and list(attrs["perm"]) == [0, 2, 3, 1]:
            name, sigmoid = node.output[0], False  # NCHW -> NHWC, flattened; cls and obj through a sigmoid
            while (tail := only_reader(name, "Reshape") or only_reader(name, "Sigmoid")) is not None:
                done.add(id(tail))
                sigmoid |= tail.op_type == "Sigmoid"
                name = tail.output[0]
            outputs[name] = {"from": node.input[0], "sigmoid": sigmoid}
        else:
            raise ValueError(f"{src}: {node.op_type} node {node.name} has no kernel in static_space/yunet.c")
    if sorted(outputs) != sorted(YUNET_OUTPUTS):
        raise ValueError(f"{src}: outputs {sorted(outputs)} were not traced back to the network")
    program = {"source": src.name, "input": "input", "steps": steps, "outputs": outputs}
    (site / "yunet.json").write_text(json.dumps(program) + "\n")
    np.concatenate(blob).astype("<f4").tofile(site / "yunet.bin")
