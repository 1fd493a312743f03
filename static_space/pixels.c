// The static Space's one hot pixel loop in WebAssembly: OpenCV's INTER_AREA shrink of a photo, written straight
// into YuNet's input (B, G, R float planes zero-padded to multiples of 32), bit for bit what fer_hf.faces feeds
// cv2.FaceDetectorYN. In JavaScript the shrink and the plane copy took ~9 ms of a 640x480 photo (the largest stage
// after the two networks); this takes ~1.5 (benchmarks/benchmark_static_space.py). yunet.js calls it.
//
// Compiled with yunet.c into kernels.wasm (committed) by build_wasm.sh, which needs clang and wasm-ld.

#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define DBL_EPS 2.220446049250313e-16

typedef struct { int32_t d, s; float a; } Tap;

// OpenCV's computeResizeAreaTab: the source pixels (and their weights) that make up each destination pixel.
static int area_table(int ssize, int dsize, double scale, Tap *tab) {
  int k = 0;
  for (int dx = 0; dx < dsize; dx++) {
    double fsx1 = dx * scale, fsx2 = fsx1 + scale;
    double cell = scale < ssize - fsx1 ? scale : ssize - fsx1;
    int sx1 = (int)__builtin_ceil(fsx1), sx2 = (int)__builtin_floor(fsx2);
    if (sx2 > ssize - 1) sx2 = ssize - 1;
    if (sx1 > sx2) sx1 = sx2;
    if (sx1 - fsx1 > 1e-3) tab[k++] = (Tap){dx, sx1 - 1, (float)((sx1 - fsx1) / cell)};
    for (int sx = sx1; sx < sx2; sx++) tab[k++] = (Tap){dx, sx, (float)(1.0 / cell)};
    if (fsx2 - sx2 > 1e-3) {
      double a = fsx2 - sx2 < 1 ? fsx2 - sx2 : 1;
      if (a > cell) a = cell;
      tab[k++] = (Tap){dx, sx2, (float)(a / cell)};
    }
  }
  return k;
}

static inline v128_t load_pixel(const uint8_t *p) {  // 4 bytes (RGB + the next byte, or RGBA) as 4 floats
  return wasm_f32x4_convert_u32x4(wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(p))));
}

// Writes a pixel's R, G, B (lanes 0-2) as YuNet's B, G, R planes.
static inline void store_bgr(float *out, int plane, int i, v128_t v) {
  out[i] = wasm_f32x4_extract_lane(v, 2);
  out[plane + i] = wasm_f32x4_extract_lane(v, 1);
  out[2 * plane + i] = wasm_f32x4_extract_lane(v, 0);
}

// OpenCV's saturate_cast<uchar>(float) on 4 lanes: round half to even, clamp to [0, 255].
static inline v128_t sat_u8(v128_t v) {
  return wasm_f32x4_min(wasm_f32x4_max(wasm_f32x4_nearest(v), wasm_f32x4_splat(0.f)), wasm_f32x4_splat(255.f));
}

// Scratch bytes yunet_planes needs for these sizes.
EXPORT(scratch_bytes) int scratch_bytes(int w, int h, int dw, int dh) {
  return (w + 2 * dw + 4 + h + 2 * dh + 4) * (int)sizeof(Tap) + 2 * dw * 16 + 16;
}

// cv2.resize(src, (dw, dh), interpolation=INTER_AREA) of an RGB (ch 3, with one readable byte after the last pixel)
// or RGBA (ch 4) image, written as YuNet's input: B, G, R float planes of padW x padH, zero right of and below it.
EXPORT(yunet_planes)
void yunet_planes(const uint8_t *src, int w, int h, int ch, int dw, int dh, float *out, int padW, int padH,
                  uint8_t *scratch) {
  const int plane = padW * padH;
  for (int c = 0; c < 3; c++) {
    float *p = out + c * plane;
    if (padW > dw) for (int y = 0; y < dh; y++) __builtin_memset(p + y * padW + dw, 0, (padW - dw) * sizeof(float));
    if (padH > dh) __builtin_memset(p + dh * padW, 0, (padH - dh) * padW * sizeof(float));
  }
  const double sx = (double)w / dw, sy = (double)h / dh;
  const int ix = (int)__builtin_floor(sx + 0.5), iy = (int)__builtin_floor(sy + 0.5);
  if (dw == w && dh == h) {
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) store_bgr(out, plane, y * padW + x, load_pixel(src + (y * w + x) * ch));
    return;
  }
  if (__builtin_fabs(sx - ix) < DBL_EPS && __builtin_fabs(sy - iy) < DBL_EPS) {
    // integer factors: OpenCV's fast path, a block average (2x2 rounds as its SIMD code does)
    const int area = ix * iy;
    const float inv = 1.0f / area;
    for (int y = 0; y < dh; y++) {
      for (int x = 0; x < dw; x++) {
        v128_t s = wasm_i32x4_splat(0);
        for (int j = 0; j < iy; j++) {
          const uint8_t *p = src + ((y * iy + j) * w + x * ix) * ch;
          for (int i = 0; i < ix; i++, p += ch)
            s = wasm_i32x4_add(s, wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(p))));
        }
        v128_t v = area == 4 ? wasm_f32x4_convert_i32x4(wasm_i32x4_shr(wasm_i32x4_add(s, wasm_i32x4_splat(2)), 2))
                             : sat_u8(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), wasm_f32x4_splat(inv)));
        store_bgr(out, plane, y * padW + x, v);
      }
    }
    return;
  }
  // the general case, tap by tap in OpenCV's order, float32 throughout (ResizeArea_Invoker)
  Tap *xt = (Tap *)(((uintptr_t)scratch + 15) & ~(uintptr_t)15);
  const int xtaps = area_table(w, dw, sx, xt);
  Tap *yt = xt + xtaps;
  const int ytaps = area_table(h, dh, sy, yt);
  v128_t *row = (v128_t *)(((uintptr_t)(yt + ytaps) + 15) & ~(uintptr_t)15), *sum = row + dw;
  for (int i = 0; i < dw; i++) sum[i] = wasm_f32x4_splat(0.f);
  int prev_dy = yt[0].d, prev_sy = -1;
  for (int k = 0; k < ytaps; k++) {
    const int dy = yt[k].d, sy_ = yt[k].s;
    if (dy != prev_dy) {
      for (int x = 0; x < dw; x++) { store_bgr(out, plane, prev_dy * padW + x, sat_u8(sum[x])); sum[x] = wasm_f32x4_splat(0.f); }
      prev_dy = dy;
    }
    if (sy_ != prev_sy) {  // a source row shared by two output rows is summed across once
      for (int x = 0; x < dw; x++) row[x] = wasm_f32x4_splat(0.f);
      const uint8_t *base = src + sy_ * w * ch;
      for (int t = 0; t < xtaps; t++)
        row[xt[t].d] = wasm_f32x4_add(row[xt[t].d], wasm_f32x4_mul(load_pixel(base + xt[t].s * ch), wasm_f32x4_splat(xt[t].a)));
      prev_sy = sy_;
    }
    const v128_t beta = wasm_f32x4_splat(yt[k].a);
    for (int x = 0; x < dw; x++) sum[x] = wasm_f32x4_add(sum[x], wasm_f32x4_mul(beta, row[x]));
  }
  for (int x = 0; x < dw; x++) store_bgr(out, plane, prev_dy * padW + x, sat_u8(sum[x]));
}

// ---------------------------------------------------------------------------------------------------------
// Pillow's BICUBIC resize (libImaging/Resample.c), the integer passes of pixels.js's resizeBicubic: the fixed-point
// coefficients (kk, ksize a row; bounds: first tap and tap count per output) come from pixels.js, so both paths share
// them. src: a face's region of a w x h image with ch bytes a pixel (3 RGB, or 4 RGBA: alpha skipped), rows `stride`
// bytes apart; out: ow x oh RGB. The horizontal pass covers only the rows the vertical one reads (into tmp: RGB).
#define PRECISION_BITS (32 - 8 - 2)

static inline uint8_t clip8(int32_t s) {
  s >>= PRECISION_BITS;  // an arithmetic shift: floor division, as pixels.js's Math.floor
  return s < 0 ? 0 : s > 255 ? 255 : (uint8_t)s;
}

EXPORT(bicubic_resize)
void bicubic_resize(const uint8_t *src, int w, int h, int ch, int stride, int ow, int oh, const int32_t *hbounds,
                    const int32_t *hkk, int hksize, const int32_t *vbounds, const int32_t *vkk, int vksize,
                    uint8_t *tmp, uint8_t *out) {
  const int first = vbounds[0], last = vbounds[2 * oh - 2] + vbounds[2 * oh - 1];
  const uint8_t *img = src;
  int istride = stride, ich = ch, yoff = 0;
  if (ow != w) {
    for (int y = 0; y < last - first; y++)
      for (int x = 0; x < ow; x++) {
        const int xmin = hbounds[2 * x], xmax = hbounds[2 * x + 1];
        const int32_t *k = hkk + x * hksize;
        const uint8_t *p = src + (y + first) * stride + xmin * ch;
        int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
        for (int i = 0; i < xmax; i++, p += ch) {
          s0 += p[0] * k[i];
          s1 += p[1] * k[i];
          s2 += p[2] * k[i];
        }
        uint8_t *d = tmp + (y * ow + x) * 3;
        d[0] = clip8(s0); d[1] = clip8(s1); d[2] = clip8(s2);
      }
    img = tmp; istride = ow * 3; ich = 3; yoff = first;
  }
  for (int y = 0; y < oh; y++) {
    const int ymin = (oh == h ? y : vbounds[2 * y]) - yoff, ymax = oh == h ? 1 : vbounds[2 * y + 1];
    const int32_t *k = vkk + y * vksize;
    for (int x = 0; x < ow; x++) {
      uint8_t *d = out + (y * ow + x) * 3;
      const uint8_t *p = img + ymin * istride + x * ich;
      if (oh == h) { d[0] = p[0]; d[1] = p[1]; d[2] = p[2]; continue; }  // no vertical pass
      int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
      for (int i = 0; i < ymax; i++, p += istride) {
        s0 += p[0] * k[i];
        s1 += p[1] * k[i];
        s2 += p[2] * k[i];
      }
      d[0] = clip8(s0); d[1] = clip8(s1); d[2] = clip8(s2);
    }
  }
}
