// YuNet (the face detector of fer_hf.faces) in WebAssembly: the five kinds of layer its float graph is made of, as
// SIMD kernels over NCHW float32 tensors. yunet.js runs the network with them, layer by layer, from the program
// scripts/build_static_space.py writes out of the ONNX file (yunet.json, weights in yunet.bin).
//
// Why not ONNX Runtime Web, which runs the classifier: its wasm build has no direct depthwise convolution (it
// expands every channel's 3x3 windows into a matrix first), and YuNet is half depthwise layers. These kernels run
// the 480x384 input in ~15 ms instead of ~21 (node, one thread, p50 side by side; README). Results agree with
// onnxruntime to ~1e-6 (float sums in another order); the page's boxes match scripts/predict.py (tests).
// Compiled with pixels.c into kernels.wasm by build_wasm.sh.

#include <wasm_simd128.h>

#include "madd.h"

#define EXPORT(name) __attribute__((export_name(#name)))

// out[co][p] = b[co] + sum_ci w[co][ci] * in[ci][p] for p < n: a 1x1 convolution (strides n), or one output row
// of a convolution over its im2col rows. Input rows are `in_stride` apart, output rows `out_stride`.
static void gemm(const float *in, int cin, int n, int in_stride, const float *w, const float *b, int cout, float *out,
                 int out_stride, int relu) {
  const v128_t zero = wasm_f32x4_splat(0.f);
  int co = 0;
  for (; co + 4 <= cout; co += 4) {
    const float *w0 = w + co * cin, *w1 = w0 + cin, *w2 = w1 + cin, *w3 = w2 + cin;
    float *o0 = out + co * out_stride, *o1 = o0 + out_stride, *o2 = o1 + out_stride, *o3 = o2 + out_stride;
    int p = 0;
    for (; p + 8 <= n; p += 8) {
      v128_t a0 = wasm_v128_load32_splat(b + co), a1 = wasm_v128_load32_splat(b + co + 1);
      v128_t a2 = wasm_v128_load32_splat(b + co + 2), a3 = wasm_v128_load32_splat(b + co + 3);
      v128_t c0 = a0, c1 = a1, c2 = a2, c3 = a3;
      const float *x = in + p;
      for (int ci = 0; ci < cin; ci++, x += in_stride) {
        v128_t u = wasm_v128_load(x), v = wasm_v128_load(x + 4);
        v128_t k0 = wasm_v128_load32_splat(w0 + ci), k1 = wasm_v128_load32_splat(w1 + ci);
        v128_t k2 = wasm_v128_load32_splat(w2 + ci), k3 = wasm_v128_load32_splat(w3 + ci);
        a0 = MADD(k0, u, a0); c0 = MADD(k0, v, c0);
        a1 = MADD(k1, u, a1); c1 = MADD(k1, v, c1);
        a2 = MADD(k2, u, a2); c2 = MADD(k2, v, c2);
        a3 = MADD(k3, u, a3); c3 = MADD(k3, v, c3);
      }
      if (relu) {
        a0 = wasm_f32x4_max(a0, zero); c0 = wasm_f32x4_max(c0, zero); a1 = wasm_f32x4_max(a1, zero); c1 = wasm_f32x4_max(c1, zero);
        a2 = wasm_f32x4_max(a2, zero); c2 = wasm_f32x4_max(c2, zero); a3 = wasm_f32x4_max(a3, zero); c3 = wasm_f32x4_max(c3, zero);
      }
      wasm_v128_store(o0 + p, a0); wasm_v128_store(o0 + p + 4, c0);
      wasm_v128_store(o1 + p, a1); wasm_v128_store(o1 + p + 4, c1);
      wasm_v128_store(o2 + p, a2); wasm_v128_store(o2 + p + 4, c2);
      wasm_v128_store(o3 + p, a3); wasm_v128_store(o3 + p + 4, c3);
    }
    for (; p < n; p++) {
      float s0 = b[co], s1 = b[co + 1], s2 = b[co + 2], s3 = b[co + 3];
      for (int ci = 0; ci < cin; ci++) {
        float x = in[ci * in_stride + p];
        s0 += w0[ci] * x; s1 += w1[ci] * x; s2 += w2[ci] * x; s3 += w3[ci] * x;
      }
      if (relu) { s0 = s0 < 0 ? 0 : s0; s1 = s1 < 0 ? 0 : s1; s2 = s2 < 0 ? 0 : s2; s3 = s3 < 0 ? 0 : s3; }
      o0[p] = s0; o1[p] = s1; o2[p] = s2; o3[p] = s3;
    }
  }
  for (; co < cout; co++) {
    const float *w0 = w + co * cin;
    float *o0 = out + co * out_stride;
    for (int p = 0; p < n; p++) {
      float s = b[co];
      for (int ci = 0; ci < cin; ci++) s += w0[ci] * in[ci * in_stride + p];
      o0[p] = relu && s < 0 ? 0 : s;
    }
  }
}

// 1x1 convolution of cin channels of n pixels into cout channels.
EXPORT(conv1x1)
void conv1x1(const float *in, int cin, int n, const float *w, const float *b, int cout, float *out) {
  gemm(in, cin, n, n, w, b, cout, out, n, 0);
}

// Depthwise 3x3, stride 1, zero padding 1: each of c channels with its own 9 weights; optional ReLU.
EXPORT(dw3x3)
void dw3x3(const float *in, int c, int h, int w, const float *k, const float *b, float *out, int relu) {
  const int n = h * w;
  for (int ch = 0; ch < c; ch++, in += n, out += n, k += 9) {
    const v128_t k0 = wasm_f32x4_splat(k[0]), k1 = wasm_f32x4_splat(k[1]), k2 = wasm_f32x4_splat(k[2]);
    const v128_t k3 = wasm_f32x4_splat(k[3]), k4 = wasm_f32x4_splat(k[4]), k5 = wasm_f32x4_splat(k[5]);
    const v128_t k6 = wasm_f32x4_splat(k[6]), k7 = wasm_f32x4_splat(k[7]), k8 = wasm_f32x4_splat(k[8]);
    const v128_t bias = wasm_f32x4_splat(b[ch]);
    for (int y = 0; y < h; y++) {
      const float *r1 = in + y * w, *r0 = y > 0 ? r1 - w : 0, *r2 = y + 1 < h ? r1 + w : 0;
      float *o = out + y * w;
      int x = 1;
      for (; x + 4 <= w - 1; x += 4) {
        v128_t s = wasm_f32x4_add(bias, wasm_f32x4_mul(k3, wasm_v128_load(r1 + x - 1)));
        s = MADD(k4, wasm_v128_load(r1 + x), s);
        s = MADD(k5, wasm_v128_load(r1 + x + 1), s);
        if (r0) {
          s = MADD(k0, wasm_v128_load(r0 + x - 1), s);
          s = MADD(k1, wasm_v128_load(r0 + x), s);
          s = MADD(k2, wasm_v128_load(r0 + x + 1), s);
        }
        if (r2) {
          s = MADD(k6, wasm_v128_load(r2 + x - 1), s);
          s = MADD(k7, wasm_v128_load(r2 + x), s);
          s = MADD(k8, wasm_v128_load(r2 + x + 1), s);
        }
        wasm_v128_store(o + x, relu ? wasm_f32x4_max(s, wasm_f32x4_splat(0.f)) : s);
      }
      // the first and last columns, and what is left over: one pixel at a time
      for (int xx = 0; xx < w; xx = (xx == 0 ? x : xx + 1)) {
        float s = b[ch];
        for (int dy = 0; dy < 3; dy++) {
          const float *r = dy == 0 ? r0 : dy == 1 ? r1 : r2;
          if (!r) continue;
          for (int dx = -1; dx <= 1; dx++) {
            int xs = xx + dx;
            if (xs >= 0 && xs < w) s += k[dy * 3 + dx + 1] * r[xs];
          }
        }
        o[xx] = relu && s < 0 ? 0 : s;
      }
    }
  }
}

// 3x3 convolution, stride 2, zero padding 1, + ReLU (YuNet's first layer): cin -> cout channels, h x w (even) in,
// h/2 x w/2 out; one output row at a time, as a product with its 9 * cin im2col rows (`tmp`: 9 * cin * w/2 floats).
EXPORT(conv3x3s2_relu)
void conv3x3s2_relu(const float *in, int cin, int h, int w, const float *k, const float *b, int cout, float *out,
                    float *tmp) {
  const int oh = h / 2, ow = w / 2;
  for (int oy = 0; oy < oh; oy++) {
    for (int ci = 0; ci < cin; ci++) {
      for (int ky = 0; ky < 3; ky++) {
        const int y = 2 * oy - 1 + ky;
        float *t0 = tmp + ((ci * 3 + ky) * 3) * ow, *t1 = t0 + ow, *t2 = t1 + ow;  // columns 2ox-1, 2ox, 2ox+1
        if (y < 0 || y >= h) {
          __builtin_memset(t0, 0, 3 * ow * sizeof(float));
          continue;
        }
        const float *r = in + (ci * h + y) * w;
        int i = 0;
        for (; i + 4 <= ow; i += 4) {  // even and odd columns, four at a time
          const v128_t a = wasm_v128_load(r + 2 * i), b = wasm_v128_load(r + 2 * i + 4);
          wasm_v128_store(t1 + i, wasm_i32x4_shuffle(a, b, 0, 2, 4, 6));
          wasm_v128_store(t2 + i, wasm_i32x4_shuffle(a, b, 1, 3, 5, 7));
        }
        for (; i < ow; i++) { t1[i] = r[2 * i]; t2[i] = r[2 * i + 1]; }
        t0[0] = 0;
        __builtin_memcpy(t0 + 1, t2, (ow - 1) * sizeof(float));
      }
    }
    gemm(tmp, 9 * cin, ow, ow, k, b, cout, out + oy * ow, oh * ow, 1);
  }
}

// 2x2 max pooling, stride 2 (h, w even).
EXPORT(maxpool2)
void maxpool2(const float *in, int c, int h, int w, float *out) {
  const int oh = h / 2, ow = w / 2;
  for (int ch = 0; ch < c; ch++)
    for (int oy = 0; oy < oh; oy++) {
      const float *r0 = in + (ch * h + 2 * oy) * w, *r1 = r0 + w;
      float *o = out + (ch * oh + oy) * ow;
      int ox = 0;
      for (; ox + 4 <= ow; ox += 4) {
        v128_t m0 = wasm_f32x4_max(wasm_v128_load(r0 + 2 * ox), wasm_v128_load(r1 + 2 * ox));
        v128_t m1 = wasm_f32x4_max(wasm_v128_load(r0 + 2 * ox + 4), wasm_v128_load(r1 + 2 * ox + 4));
        wasm_v128_store(o + ox, wasm_f32x4_max(wasm_i32x4_shuffle(m0, m1, 0, 2, 4, 6), wasm_i32x4_shuffle(m0, m1, 1, 3, 5, 7)));
      }
      for (; ox < ow; ox++) {
        float a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
        float d = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
        o[ox] = a > d ? a : d;
      }
    }
}

// out = big + small upsampled 2x by nearest neighbour (Resize, asymmetric, floor): c x h x w, small c x h/2 x w/2.
EXPORT(upsample2_add)
void upsample2_add(const float *small, const float *big, int c, int h, int w, float *out) {
  const int sw = w / 2, sh = h / 2;
  for (int ch = 0; ch < c; ch++)
    for (int y = 0; y < h; y++) {
      const float *s = small + (ch * sh + y / 2) * sw, *g = big + (ch * h + y) * w;
      float *o = out + (ch * h + y) * w;
      int x = 0;
      for (; x + 8 <= w; x += 8) {
        v128_t v = wasm_v128_load(s + x / 2);
        wasm_v128_store(o + x, wasm_f32x4_add(wasm_v128_load(g + x), wasm_i32x4_shuffle(v, v, 0, 0, 1, 1)));
        wasm_v128_store(o + x + 4, wasm_f32x4_add(wasm_v128_load(g + x + 4), wasm_i32x4_shuffle(v, v, 2, 2, 3, 3)));
      }
      for (; x < w; x++) o[x] = g[x] + s[x / 2];
    }
}
