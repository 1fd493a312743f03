#!/usr/bin/env bash
# Compiles pixels.c (the shrink into YuNet's input), yunet.c (YuNet's layers) and vit.c (the int8 ViT's blocks) into
# kernels-relaxed.wasm (fused multiply-adds: WebAssembly relaxed SIMD, Chrome and Edge since 114) and kernels.wasm
# (plain SIMD, for browsers without it: the page validates the first and falls back). Both are committed, so that
# building the site needs no C compiler.
#   bash static_space/build_wasm.sh [OUTPUT_DIR]   # needs clang >= 16 and wasm-ld (Debian: apt-get install clang-19 lld-19)
# -ffp-contract=off: every float32 product and sum rounded on its own unless the code asks for a fused one (MADD in
# madd.h), as OpenCV's scalar code does; tests/test_static_space.py checks the shrink against cv2.resize byte for
# byte, YuNet against OpenCV, the ViT against scripts/predict.py, and this build against the committed files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
for cc in clang-19 clang-18 clang-17 clang-16 clang; do  # the relaxed SIMD intrinsics came with clang 16
  if command -v "$cc" > /dev/null && echo '#include <wasm_simd128.h>
v128_t f(v128_t a) { return wasm_f32x4_relaxed_madd(a, a, a); }' | "$cc" --target=wasm32 -msimd128 -mrelaxed-simd -x c -c -o /dev/null - 2> /dev/null; then
    break
  fi
  cc=""
done
if [ -z "$cc" ]; then
  echo "build_wasm.sh: no clang with WebAssembly relaxed SIMD (clang >= 16) found" >&2
  exit 3
fi
flags=(--target=wasm32 -O3 -msimd128 -mbulk-memory -ffp-contract=off -nostdlib -Wl,--no-entry -Wl,--export=__heap_base
       "-fuse-ld=$(command -v "wasm-ld${cc#clang}" || command -v wasm-ld)")
sources=("$here/pixels.c" "$here/yunet.c" "$here/vit.c")
"$cc" "${flags[@]}" -o "$out/kernels.wasm" "${sources[@]}"
"$cc" "${flags[@]}" -mrelaxed-simd -DFER_RELAXED -o "$out/kernels-relaxed.wasm" "${sources[@]}"
