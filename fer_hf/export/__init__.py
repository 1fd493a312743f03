"""Exports: a trained model as ONNX, and the static Space (the whole demo as files a browser runs).

- `onnx`: the ONNX export (fp32, dynamic int8), its `PipelineConfig` as metadata, and its parity, accuracy and
  latency checks against PyTorch (scripts/export_onnx.py).
- `static_site`: the static Space's site, from a model folder or an ONNX file (scripts/build_static_space.py);
  its page is static_space/ of the repository. `yunet_program` writes YuNet as layers for the page's WebAssembly
  kernels; `vit_program` and `vit_stem` do the same for an int8 ViT's blocks and stem.

May import: data, models, inference, utils.

The page runs YuNet on its own kernels always (a graph other than YuNet 2023mar is a build error), and the
classifier on them too where it can. It falls back to onnxruntime-web for the whole model.onnx when
`vit_program` finds no plain pre-norm ViT in the graph (a CNN, the fp32 export, layer scale or q/k norm, a head
that does not read the normed class token: `NotAViT`), and for the stem only (stem.onnx, up to the first block;
the blocks and head stay on the kernels) when `vit_stem` finds a stem the kernels lack (anything but int8 square
convolutions with a multiple of 8 output channels, group norm + ReLU and -inf-padded max pooling, then
[class token; patches] + position embedding: `NotOwnStem`). onnxruntime-web's wasm ships only in those two cases.
"""
