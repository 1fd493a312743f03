// The transformer blocks of the int8 ViT classifier in WebAssembly: what onnxruntime computes for the blocks of the
// graph scripts/export_onnx.py writes (dynamic int8 quantisation), as a few fused kernels. vit.js runs them from the
// program scripts/build_static_space.py writes (vit.json: where each weight lies in model.onnx); onnxruntime-web
// still runs the stem (patch embedding, class token, position embedding: stem.onnx) and any model this does not fit.
//
// Why: onnxruntime-web spends ~15 ms a face on the 12 blocks of the R+ViT-Ti student, 2/3 of it outside the matrix
// products (~480 small nodes: shape arithmetic, casts, layer norms, an erf per GELU value); fused here they take a
// third of that (README). Same arithmetic as onnxruntime: per-tensor uint8 activations (DynamicQuantizeLinear: the
// range widened to hold 0, scale (max - min) / 255, zero point and values rounded half to even), per-channel int8
// weights with zero point 0, int32 sums (exact), then float32 `sum * (a_scale * w_scale) + bias`. The float steps
// around them (layer norm, softmax, erf) differ from onnxruntime's in the last bits only; the page's scores match
// scripts/predict.py (tests/test_static_space.py). Compiled with pixels.c and yunet.c into kernels.wasm.

#include <stdint.h>
#include <wasm_simd128.h>

#include "madd.h"

#define EXPORT(name) __attribute__((export_name(#name)))

// ---------------------------------------------------------------------------------------------------------
// exp and erf in float32 (no libm here): Cephes' expf (range reduction by ln 2 in two parts, degree-5 polynomial,
// ~1 ulp) and Abramowitz & Stegun 7.1.26 for erf (absolute error < 1.5e-7), four lanes at a time.

static v128_t exp4(v128_t x) {
  x = wasm_f32x4_min(wasm_f32x4_max(x, wasm_f32x4_splat(-87.3f)), wasm_f32x4_splat(88.3f));
  v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = MADD(wasm_f32x4_splat(1.9875691500e-4f), r, wasm_f32x4_splat(1.3981999507e-3f));
  p = MADD(p, r, wasm_f32x4_splat(8.3334519073e-3f));
  p = MADD(p, r, wasm_f32x4_splat(4.1665795894e-2f));
  p = MADD(p, r, wasm_f32x4_splat(1.6666665459e-1f));
  p = MADD(p, r, wasm_f32x4_splat(5.0000001201e-1f));
  p = wasm_f32x4_add(MADD(wasm_f32x4_mul(p, r), r, r), wasm_f32x4_splat(1.f));
  v128_t pow2n = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, pow2n);
}

static v128_t erf4(v128_t x) {
  v128_t ax = wasm_f32x4_abs(x);
  v128_t t = wasm_f32x4_div(wasm_f32x4_splat(1.f), MADD(wasm_f32x4_splat(0.3275911f), ax, wasm_f32x4_splat(1.f)));
  v128_t p = MADD(wasm_f32x4_splat(1.061405429f), t, wasm_f32x4_splat(-1.453152027f));
  p = MADD(p, t, wasm_f32x4_splat(1.421413741f));
  p = MADD(p, t, wasm_f32x4_splat(-0.284496736f));
  p = MADD(p, t, wasm_f32x4_splat(0.254829592f));
  p = wasm_f32x4_mul(p, t);
  v128_t y = wasm_f32x4_sub(wasm_f32x4_splat(1.f), wasm_f32x4_mul(p, exp4(wasm_f32x4_neg(wasm_f32x4_mul(ax, ax)))));
  return wasm_v128_bitselect(wasm_f32x4_neg(y), y, wasm_f32x4_lt(x, wasm_f32x4_splat(0.f)));
}

static float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

// ---------------------------------------------------------------------------------------------------------
// Weights: int8 [k][n] (ONNX MatMul's B; or int16, the stem's w - zero point) widened to int16 and packed for the
// product below: per block of 8 columns, per pair of rows, the 8 columns' (row 2i, row 2i+1) pairs. n is padded to
// a multiple of 8 with zero columns, k to an even number with a zero row. Returns the int16 count written.
static int pack(const int8_t *w8, const int16_t *w16, int k, int n, int16_t *out) {
  const int kp = (k + 1) / 2, np = (n + 7) & ~7;
  int16_t *o = out;
  for (int nb = 0; nb < np; nb += 8)
    for (int i = 0; i < kp; i++)
      for (int c = 0; c < 8; c++)
        for (int r = 0; r < 2; r++) {
          const int row = 2 * i + r, col = nb + c;
          *o++ = row >= k || col >= n ? 0 : w8 ? w8[row * n + col] : w16[row * n + col];
        }
  return (int)(o - out);
}

EXPORT(vit_pack)
int vit_pack(const int8_t *w, int k, int n, int16_t *out) { return pack(w, 0, k, n, out); }

EXPORT(vit_pack16)
int vit_pack16(const int16_t *w, int k, int n, int16_t *out) { return pack(0, w, k, n, out); }

// DynamicQuantizeLinear of x (n floats, one tensor: every face of the batch together) as onnxruntime computes it;
// writes q - zero_point as int16 (the product's input, rows of `k` values padded to `kp` with zeros) and returns
// the scale.
EXPORT(vit_quantize)
float vit_quantize(const float *x, int rows, int k, int kp, int16_t *q) {
  v128_t lo = wasm_f32x4_splat(0.f), hi = lo;  // the range always holds 0
  const int n = rows * k;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    lo = wasm_f32x4_pmin(v, lo);
    hi = wasm_f32x4_pmax(v, hi);
  }
  float l4[4], h4[4], mn = 0.f, mx = 0.f;
  wasm_v128_store(l4, lo);
  wasm_v128_store(h4, hi);
  for (int l = 0; l < 4; l++) {
    mn = l4[l] < mn ? l4[l] : mn;
    mx = h4[l] > mx ? h4[l] : mx;
  }
  for (; i < n; i++) {
    mn = x[i] < mn ? x[i] : mn;
    mx = x[i] > mx ? x[i] : mx;
  }
  const float scale = mx == mn ? 1.f : (mx - mn) / 255.f;
  float zp = 0.f - mn / scale;
  zp = zp < 0.f ? 0.f : zp > 255.f ? 255.f : zp;
  zp = wasm_f32x4_extract_lane(wasm_f32x4_nearest(wasm_f32x4_splat(zp)), 0);
  const v128_t vs = wasm_f32x4_splat(scale), vlo = wasm_f32x4_splat(-zp), vhi = wasm_f32x4_splat(255.f - zp);
  for (int r = 0; r < rows; r++) {
    const float *xr = x + r * k;
    int16_t *qr = q + r * kp;
    int c = 0;
    for (; c + 8 <= k; c += 8) {
      v128_t a = wasm_f32x4_nearest(wasm_f32x4_div(wasm_v128_load(xr + c), vs));
      v128_t b = wasm_f32x4_nearest(wasm_f32x4_div(wasm_v128_load(xr + c + 4), vs));
      a = wasm_f32x4_min(wasm_f32x4_max(a, vlo), vhi);
      b = wasm_f32x4_min(wasm_f32x4_max(b, vlo), vhi);
      wasm_v128_store(qr + c, wasm_i16x8_narrow_i32x4(wasm_i32x4_trunc_sat_f32x4(a), wasm_i32x4_trunc_sat_f32x4(b)));
    }
    for (; c < k; c++) {
      float v = wasm_f32x4_extract_lane(wasm_f32x4_nearest(wasm_f32x4_splat(xr[c] / scale)), 0);
      qr[c] = (int16_t)(v < -zp ? -zp : v > 255.f - zp ? 255.f - zp : v);
    }
    for (; c < kp; c++) qr[c] = 0;
  }
  return scale;
}

// One 8-column tile of the output, v = sum * mul + bias, then by mode: 0 store, 1 add to what is there (the
// residual stream), 2 store GELU(v) (the erf form).
static void epilogue(v128_t acc, const float *mul, const float *bias, float *o, int mode) {
  v128_t v = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(acc), wasm_v128_load(mul)), wasm_v128_load(bias));
  if (mode == 1) v = wasm_f32x4_add(wasm_v128_load(o), v);
  else if (mode == 2) {  // onnxruntime fuses the graph's GELU: 0.5 * v * (1 + erf(v * sqrt(1/2)))
    v128_t e = erf4(wasm_f32x4_mul(v, wasm_f32x4_splat(0.70710678118654752f)));
    v = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_splat(0.5f), v), wasm_f32x4_add(e, wasm_f32x4_splat(1.f)));
  }
  wasm_v128_store(o, v);
}

// out[m][n] (rows `np` floats apart) from a (m rows of kp int16, vit_quantize) and the packed weights: the int32
// sums of products, times mul[n] = a_scale * w_scale[n], plus bias[n], then `mode` (epilogue). mul: np floats.
EXPORT(vit_linear)
void vit_linear(const int16_t *a, int m, int kp, const int16_t *w, int np, const float *mul, const float *bias,
                float *out, int mode) {
  const int pairs = kp / 2;
  for (int nb = 0; nb < np; nb += 8) {
    const int16_t *wb = w + nb * kp;
    const float *mu = mul + nb, *bi = bias + nb;
    int r = 0;
    for (; r + 4 <= m; r += 4) {
      v128_t c00 = wasm_i32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      const int16_t *a0 = a + r * kp, *a1 = a0 + kp, *a2 = a1 + kp, *a3 = a2 + kp, *b = wb;
      for (int i = 0; i < pairs; i++, b += 16) {
        const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 8);
        const v128_t x0 = wasm_v128_load32_splat(a0 + 2 * i), x1 = wasm_v128_load32_splat(a1 + 2 * i);
        const v128_t x2 = wasm_v128_load32_splat(a2 + 2 * i), x3 = wasm_v128_load32_splat(a3 + 2 * i);
        c00 = wasm_i32x4_add(c00, wasm_i32x4_dot_i16x8(x0, b0)); c01 = wasm_i32x4_add(c01, wasm_i32x4_dot_i16x8(x0, b1));
        c10 = wasm_i32x4_add(c10, wasm_i32x4_dot_i16x8(x1, b0)); c11 = wasm_i32x4_add(c11, wasm_i32x4_dot_i16x8(x1, b1));
        c20 = wasm_i32x4_add(c20, wasm_i32x4_dot_i16x8(x2, b0)); c21 = wasm_i32x4_add(c21, wasm_i32x4_dot_i16x8(x2, b1));
        c30 = wasm_i32x4_add(c30, wasm_i32x4_dot_i16x8(x3, b0)); c31 = wasm_i32x4_add(c31, wasm_i32x4_dot_i16x8(x3, b1));
      }
      float *o = out + r * np + nb;
      epilogue(c00, mu, bi, o, mode); epilogue(c01, mu + 4, bi + 4, o + 4, mode); o += np;
      epilogue(c10, mu, bi, o, mode); epilogue(c11, mu + 4, bi + 4, o + 4, mode); o += np;
      epilogue(c20, mu, bi, o, mode); epilogue(c21, mu + 4, bi + 4, o + 4, mode); o += np;
      epilogue(c30, mu, bi, o, mode); epilogue(c31, mu + 4, bi + 4, o + 4, mode);
    }
    for (; r < m; r++) {
      v128_t c0 = wasm_i32x4_splat(0), c1 = c0;
      const int16_t *a0 = a + r * kp, *b = wb;
      for (int i = 0; i < pairs; i++, b += 16) {
        const v128_t x0 = wasm_v128_load32_splat(a0 + 2 * i);
        c0 = wasm_i32x4_add(c0, wasm_i32x4_dot_i16x8(x0, wasm_v128_load(b)));
        c1 = wasm_i32x4_add(c1, wasm_i32x4_dot_i16x8(x0, wasm_v128_load(b + 8)));
      }
      float *o = out + r * np + nb;
      epilogue(c0, mu, bi, o, mode); epilogue(c1, mu + 4, bi + 4, o + 4, mode);
    }
  }
}

// mul[n] = a_scale * w_scale[n] (w_scale: one per column, or one for all when per_channel is 0), n padded to np.
EXPORT(vit_scales)
void vit_scales(float a_scale, const float *w_scale, int n, int np, int per_channel, float *mul) {
  for (int i = 0; i < np; i++) mul[i] = i < n ? a_scale * w_scale[per_channel ? i : 0] : 0.f;
}

// LayerNormalization over the last axis (d, a multiple of 4) of `rows` rows, `stride` floats apart in x (the class
// tokens alone: stride t * d); y is packed.
EXPORT(vit_layernorm)
void vit_layernorm(const float *x, int rows, int d, int stride, const float *g, const float *b, float eps, float *y) {
  for (int r = 0; r < rows; r++, x += stride, y += d) {
    v128_t s = wasm_f32x4_splat(0.f);
    for (int i = 0; i < d; i += 4) s = wasm_f32x4_add(s, wasm_v128_load(x + i));
    const v128_t mean = wasm_f32x4_splat(hsum(s) / (float)d);
    v128_t ss = wasm_f32x4_splat(0.f);
    for (int i = 0; i < d; i += 4) {
      v128_t c = wasm_f32x4_sub(wasm_v128_load(x + i), mean);
      ss = MADD(c, c, ss);
    }
    const v128_t inv = wasm_f32x4_div(wasm_f32x4_splat(1.f), wasm_f32x4_sqrt(wasm_f32x4_splat(hsum(ss) / (float)d + eps)));
    for (int i = 0; i < d; i += 4) {
      v128_t c = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + i), mean), inv);
      wasm_v128_store(y + i, wasm_f32x4_add(wasm_f32x4_mul(c, wasm_v128_load(g + i)), wasm_v128_load(b + i)));
    }
  }
}

// Multi-head self-attention of `batch` sequences of t tokens: qkv rows hold [q | k | v], each `heads` x hd (hd a
// multiple of 4); out rows are the heads' outputs side by side (heads * hd). q and k are each multiplied by
// `qk_scale` (sqrt(1 / sqrt(hd)), as torch's exported scaled_dot_product_attention does), then softmax(q k^T) v.
// tmp: (t + 2 * tp) * hd + tp floats, tp = t rounded up to 4.
EXPORT(vit_attention)
void vit_attention(const float *qkv, int batch, int t, int heads, int hd, float qk_scale, float *out, float *tmp) {
  const int d = heads * hd, row = 3 * d, tp = (t + 3) & ~3;
  float *qs = tmp, *kt = qs + t * hd, *p = kt + hd * tp;  // q scaled; k scaled and transposed (hd x tp)
  const v128_t sc = wasm_f32x4_splat(qk_scale), zero = wasm_f32x4_splat(0.f);
  for (int bt = 0; bt < batch; bt++)
    for (int h = 0; h < heads; h++) {
      const float *base = qkv + bt * t * row + h * hd;
      for (int i = 0; i < t; i++)
        for (int c = 0; c < hd; c += 4)
          wasm_v128_store(qs + i * hd + c, wasm_f32x4_mul(wasm_v128_load(base + i * row + c), sc));
      for (int c = 0; c < hd; c++) {
        for (int j = 0; j < t; j++) kt[c * tp + j] = base[j * row + d + c] * qk_scale;
        for (int j = t; j < tp; j++) kt[c * tp + j] = 0.f;
      }
      for (int i = 0; i < t; i++) {
        const float *q = qs + i * hd;
        for (int j = 0; j < tp; j += 4) {  // the scores of token i against four tokens at a time
          v128_t s = zero;
          for (int c = 0; c < hd; c++) s = MADD(wasm_v128_load32_splat(q + c), wasm_v128_load(kt + c * tp + j), s);
          wasm_v128_store(p + j, s);
        }
        float mx = p[0], sum = 0.f;
        for (int j = 1; j < t; j++) mx = p[j] > mx ? p[j] : mx;
        const v128_t vmx = wasm_f32x4_splat(mx);
        int j = 0;
        for (; j + 4 <= t; j += 4) {
          v128_t e = exp4(wasm_f32x4_sub(wasm_v128_load(p + j), vmx));
          wasm_v128_store(p + j, e);
          sum += hsum(e);
        }
        if (j < t) {  // the last 1-3 tokens (the padded lanes are not summed)
          float e[4];
          wasm_v128_store(e, exp4(wasm_f32x4_sub(wasm_v128_load(p + j), vmx)));
          for (int l = 0; j < t; j++, l++) sum += (p[j] = e[l]);
        }
        const float inv = 1.f / sum;
        float *o = out + (bt * t + i) * d + h * hd;
        for (int c0 = 0; c0 < hd; c0 += 16) {  // sum_j p_j v_j, 16 values at a time in registers
          v128_t a0 = zero, a1 = zero, a2 = zero, a3 = zero;
          const float *v = base + 2 * d + c0;
          if (c0 + 16 <= hd) {
            for (int jj = 0; jj < t; jj++, v += row) {
              const v128_t pj = wasm_f32x4_splat(p[jj] * inv);
              a0 = MADD(pj, wasm_v128_load(v), a0); a1 = MADD(pj, wasm_v128_load(v + 4), a1);
              a2 = MADD(pj, wasm_v128_load(v + 8), a2); a3 = MADD(pj, wasm_v128_load(v + 12), a3);
            }
            wasm_v128_store(o + c0, a0); wasm_v128_store(o + c0 + 4, a1);
            wasm_v128_store(o + c0 + 8, a2); wasm_v128_store(o + c0 + 12, a3);
          } else {
            for (int c = c0; c < hd; c += 4) {
              v128_t acc = zero;
              for (int jj = 0; jj < t; jj++) acc = MADD(wasm_f32x4_splat(p[jj] * inv), wasm_v128_load(base + jj * row + 2 * d + c), acc);
              wasm_v128_store(o + c, acc);
            }
          }
        }
      }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The stem: the patch embedding (a convolution as im2col rows and the product above), and for the hybrid R+ViT a
// ResNet stem before it (convolution, group norm + ReLU, max pooling); then the class token and position embedding.

// im2col of a quantised image (int16, q - zero point; NCHW when nhwc is 0, else NHWC) for a k x k convolution with
// stride s and zero padding (pad_top, pad_left; the rest implied by oh, ow): one row of kp values per output pixel
// (b, oy, ox), in the weights' (channel, ky, kx) order; padding and the row's tail are 0 (= the zero point).
EXPORT(vit_im2col)
void vit_im2col(const int16_t *q, int batch, int c, int h, int w, int nhwc, int k, int s, int pad_top, int pad_left,
                int oh, int ow, int16_t *a, int kp) {
  for (int b = 0; b < batch; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        int16_t *row = a + ((b * oh + oy) * ow + ox) * kp;
        int i = 0;
        for (int ch = 0; ch < c; ch++)
          for (int ky = 0; ky < k; ky++) {
            const int y = oy * s - pad_top + ky;
            for (int kx = 0; kx < k; kx++, i++) {
              const int x = ox * s - pad_left + kx;
              row[i] = y < 0 || y >= h || x < 0 || x >= w ? 0
                       : nhwc ? q[((b * h + y) * w + x) * c + ch] : q[((b * c + ch) * h + y) * w + x];
            }
          }
        for (; i < kp; i++) row[i] = 0;
      }
}

// GroupNorm + ReLU in place on NHWC maps (batch x n pixels x c channels, c / groups channels a group), as the graph
// computes it: InstanceNormalization over each group (mean, biased variance, eps), then * gamma[c] + beta[c].
EXPORT(vit_groupnorm_relu)
void vit_groupnorm_relu(float *x, int batch, int n, int c, int groups, float eps, const float *gamma, const float *beta) {
  const int per = c / groups;
  for (int b = 0; b < batch; b++)
    for (int g = 0; g < groups; g++) {
      float *base = x + b * n * c + g * per;
      float sum = 0.f, ss = 0.f;
      for (int p = 0; p < n; p++)
        for (int j = 0; j < per; j++) sum += base[p * c + j];
      const float mean = sum / (float)(n * per);
      for (int p = 0; p < n; p++)
        for (int j = 0; j < per; j++) {
          const float d = base[p * c + j] - mean;
          ss += d * d;
        }
      const float inv = 1.f / wasm_f32x4_extract_lane(wasm_f32x4_sqrt(wasm_f32x4_splat(ss / (float)(n * per) + eps)), 0);
      for (int p = 0; p < n; p++)
        for (int j = 0; j < per; j++) {
          float v = (base[p * c + j] - mean) * inv * gamma[g * per + j] + beta[g * per + j];
          base[p * c + j] = v > 0.f ? v : 0.f;
        }
    }
}

// k x k max pooling, stride s, on NHWC maps, the padding (pad_top, pad_left, and what oh, ow imply) as -infinity.
EXPORT(vit_maxpool)
void vit_maxpool(const float *x, int batch, int h, int w, int c, int k, int s, int pad_top, int pad_left, int oh, int ow,
                 float *out) {
  for (int b = 0; b < batch; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        float *o = out + ((b * oh + oy) * ow + ox) * c;
        for (int ch = 0; ch < c; ch++) o[ch] = -3.402823466e38f;
        for (int ky = 0; ky < k; ky++) {
          const int y = oy * s - pad_top + ky;
          if (y < 0 || y >= h) continue;
          for (int kx = 0; kx < k; kx++) {
            const int xx = ox * s - pad_left + kx;
            if (xx < 0 || xx >= w) continue;
            const float *v = x + ((b * h + y) * w + xx) * c;
            for (int ch = 0; ch < c; ch++) o[ch] = v[ch] > o[ch] ? v[ch] : o[ch];
          }
        }
      }
}

// The blocks' input: per face, [class token; patch rows] + position embedding (n patches of d values, pos: n + 1 rows).
EXPORT(vit_tokens)
void vit_tokens(const float *patches, const float *cls, const float *pos, int batch, int n, int d, float *x) {
  for (int b = 0; b < batch; b++) {
    float *xb = x + b * (n + 1) * d;
    for (int i = 0; i < d; i++) xb[i] = cls[i] + pos[i];
    for (int r = 0; r < n; r++)
      for (int i = 0; i < d; i++) xb[(r + 1) * d + i] = patches[(b * n + r) * d + i] + pos[(r + 1) * d + i];
  }
}
