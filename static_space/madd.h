// a * b + c, four float32 lanes: one fused multiply-add where the browser has relaxed SIMD (kernels-relaxed.wasm,
// built with -DFER_RELAXED; rounded once, so results move in the last bits only), else a product and a sum
// (kernels.wasm, for browsers without it). Used by yunet.c and vit.c; pixels.c must stay bit-exact and does not.
#ifndef FER_MADD_H
#define FER_MADD_H
#include <wasm_simd128.h>
#ifdef FER_RELAXED
#define MADD(a, b, c) wasm_f32x4_relaxed_madd(a, b, c)
#else
#define MADD(a, b, c) wasm_f32x4_add(c, wasm_f32x4_mul(a, b))
#endif
#endif
