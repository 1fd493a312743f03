#!/usr/bin/env bash
# Compiles pixels.c (the shrink into YuNet's input) and yunet.c (YuNet's layers) into kernels.wasm, which is
# committed, so that building the site needs no C compiler.
#   bash static_space/build_wasm.sh [OUTPUT]      # needs clang and wasm-ld (Debian: apt-get install clang lld)
# -ffp-contract=off: every float32 product and sum rounded on its own, as OpenCV's scalar code does (wasm has no FMA
# anyway); tests/test_static_space.py checks the shrink against cv2.resize byte for byte, YuNet against
# onnxruntime, and this build against the committed file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
clang --target=wasm32 -O3 -msimd128 -mbulk-memory -ffp-contract=off -nostdlib \
      -Wl,--no-entry -Wl,--export=__heap_base -o "${1:-$here/kernels.wasm}" "$here/pixels.c" "$here/yunet.c" "$here/vit.c"
