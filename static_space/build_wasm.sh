#!/usr/bin/env bash
# Compiles pixels.c into pixels.wasm (committed, so that building the site needs no C compiler).
#   bash static_space/build_wasm.sh [OUTPUT]      # needs clang and wasm-ld (Debian: apt-get install clang lld)
# -ffp-contract=off: every float32 product and sum rounded on its own, as OpenCV's scalar code does (wasm has no FMA
# anyway); tests/test_static_space.py checks the result against cv2.resize byte for byte, and this build against
# the committed file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
clang --target=wasm32 -O3 -msimd128 -mbulk-memory -ffp-contract=off -nostdlib \
      -Wl,--no-entry -Wl,--export=__heap_base -o "${1:-$here/pixels.wasm}" "$here/pixels.c"
