// Pixel operations of the fer-hf page, bit-exact copies of what the Python path does to an image:
// OpenCV's INTER_AREA shrink (fer_hf.faces, before detection) and Pillow's BICUBIC resize (FerTransform, for the
// model), with Python's and OpenCV's rounding. Images are bytes row by row, RGB or, where a function takes `ch` = 4,
// RGBA straight from a canvas (alpha skipped: the page composites on white first); every output is RGB. Reading the
// canvas's RGBA directly saves a full-image RGB copy per photo (scripts/benchmark_static_space.py).

// Python's round(): halves go to the even neighbour (JavaScript's Math.round sends them up).
export function pyRound(x) {
  const r = Math.round(x);
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

// OpenCV's saturate_cast<uchar>(float) of an area average (0 <= v < 255.5): round half to even. Adding and taking
// away 1.5 * 2^52 rounds a double to an integer, halves to even (the result is written to a plain Uint8Array).
const ROUND = 6755399441055744;
const u8 = (v) => (v + ROUND) - ROUND;

// OpenCV's saturate_cast<uchar>(float): round half to even, then clamp.
function satU8(v) {
  let r = Math.round(v);
  if (r - v === 0.5 && (r & 1)) r -= 1;  // a tie rounded up to an odd number: go down to the even one
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

// ---------------------------------------------------------------------------------------------------------
// cv2.resize(..., interpolation=INTER_AREA), shrinking only (computeResizeAreaTab + ResizeArea_Invoker).

function areaTable(ssize, dsize, scale) {
  const di = [], si = [], alpha = [];
  const push = (d, s, a) => { di.push(d); si.push(s); alpha.push(a); };
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) push(dx, sx1 - 1, (sx1 - fsx1) / cellWidth);
    for (let sx = sx1; sx < sx2; sx++) push(dx, sx, 1.0 / cellWidth);
    if (fsx2 - sx2 > 1e-3) push(dx, sx2, Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth);
  }
  return { di: Int32Array.from(di), si: Int32Array.from(si), alpha: Float32Array.from(alpha), length: di.length };
}

// Where each output pixel's taps start in a table (its taps are consecutive), plus the end: dsize + 1 entries.
function firstTaps(table, dsize) {
  const first = new Int32Array(dsize + 1);
  for (let t = 0; t < table.length; t++) first[table.di[t] + 1]++;
  for (let d = 0; d < dsize; d++) first[d + 1] += first[d];
  return first;
}

// Integer factors take OpenCV's fast path: a plain block average (the 2x2 case rounds as its SIMD code does).
function resizeAreaFast(src, w, h, dw, dh, sx, sy, ch) {
  const out = new Uint8Array(dw * dh * 3), area = sx * sy, inv = Math.fround(1 / area), n = dw * 3;
  const sum = new Int32Array(n);
  for (let y = 0; y < dh; y++) {
    sum.fill(0);
    for (let j = 0; j < sy; j++) {
      const row = (y * sy + j) * w * ch;
      for (let x = 0; x < dw; x++) {
        const d = x * 3;
        for (let i = 0, s = row + x * sx * ch; i < sx; i++, s += ch) { sum[d] += src[s]; sum[d + 1] += src[s + 1]; sum[d + 2] += src[s + 2]; }
      }
    }
    const o = y * n;
    if (area === 4) for (let i = 0; i < n; i++) out[o + i] = (sum[i] + 2) >> 2;
    else for (let i = 0; i < n; i++) out[o + i] = satU8(Math.fround(sum[i] * inv));
  }
  return out;
}

// Horizontal pass of the source row at offset base, tap by tap in OpenCV's order, float32 throughout: each product
// and each sum is rounded to float32 (fround; a double add of two floats, rounded to float, is the float add).
function areaRow(src, base, dw, first, offsets, alpha, row) {
  const f = Math.fround;
  for (let dx = 0, d = 0; dx < dw; dx++, d += 3) {
    let r0 = 0, r1 = 0, r2 = 0;
    for (let t = first[dx], end = first[dx + 1]; t < end; t++) {
      const s = base + offsets[t], a = alpha[t];
      r0 = f(r0 + f(src[s] * a)); r1 = f(r1 + f(src[s + 1] * a)); r2 = f(r2 + f(src[s + 2] * a));
    }
    row[d] = r0; row[d + 1] = r1; row[d + 2] = r2;
  }
}

export function resizeArea(src, w, h, dw, dh, ch = 3) {
  const scaleX = w / dw, scaleY = h / dh;
  const ix = Math.round(scaleX), iy = Math.round(scaleY);
  if (Math.abs(scaleX - ix) < 2.220446049250313e-16 && Math.abs(scaleY - iy) < 2.220446049250313e-16) {
    return resizeAreaFast(src, w, h, dw, dh, ix, iy, ch);
  }
  const xt = areaTable(w, dw, scaleX), yt = areaTable(h, dh, scaleY), n = dw * 3, f = Math.fround;
  const xfirst = firstTaps(xt, dw), yfirst = firstTaps(yt, dh), xs = new Int32Array(xt.length), xalpha = xt.alpha;
  for (let t = 0; t < xt.length; t++) xs[t] = xt.si[t] * ch;
  // An output row's source rows are consecutive and later rows only move down, so a pool of (most taps + 1)
  // rows, slot sy % pool, holds each source row's pass from its first use to its last: every pass is done once.
  let most = 1;
  for (let dy = 0; dy < dh; dy++) most = Math.max(most, yfirst[dy + 1] - yfirst[dy]);
  const pool = most + 1, rows = Array.from({ length: pool }, () => new Float32Array(n)), held = new Int32Array(pool).fill(-1);
  const rowOf = (sy) => {
    const slot = sy % pool;
    if (held[slot] !== sy) { areaRow(src, sy * w * ch, dw, xfirst, xs, xalpha, rows[slot]); held[slot] = sy; }
    return rows[slot];
  };
  const out = new Uint8Array(dw * dh * 3), sum = new Float32Array(n);
  for (let dy = 0, o = 0; dy < dh; dy++, o += n) {
    const k = yfirst[dy], taps = yfirst[dy + 1] - k;
    const b0 = yt.alpha[k], r0 = rowOf(yt.si[k]);
    if (taps === 1) { for (let i = 0; i < n; i++) out[o + i] = u8(f(b0 * r0[i])); continue; }
    const b1 = yt.alpha[k + 1], r1 = rowOf(yt.si[k + 1]);
    if (taps === 2) { for (let i = 0; i < n; i++) out[o + i] = u8(f(f(b0 * r0[i]) + f(b1 * r1[i]))); continue; }
    for (let i = 0; i < n; i++) sum[i] = f(f(b0 * r0[i]) + f(b1 * r1[i]));
    for (let t = k + 2; t < k + taps; t++) {
      const b = yt.alpha[t], r = rowOf(yt.si[t]);
      for (let i = 0; i < n; i++) sum[i] += f(b * r[i]);
    }
    for (let i = 0; i < n; i++) out[o + i] = u8(sum[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Pillow's Image.resize(size, BICUBIC) (libImaging/Resample.c): a = -0.5, support widened by the
// scale when shrinking (antialias), 22-bit fixed-point coefficients, horizontal pass first, uint8 in between.

const PRECISION_BITS = 32 - 8 - 2;

function bicubic(x) {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function coefficients(inSize, outSize) {
  const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1, bounds = new Int32Array(outSize * 2), kk = new Int32Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale, ss = 1 / filterscale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const k = new Float64Array(xmax);
    let ww = 0;
    for (let x = 0; x < xmax; x++) { k[x] = bicubic((x + xmin - center + 0.5) * ss); ww += k[x]; }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x] / ww : k[x];
      kk[xx * ksize + x] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin; bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

const clip8 = (ss) => { const v = Math.floor(ss / (1 << PRECISION_BITS)); return v < 0 ? 0 : v > 255 ? 255 : v; };

// src: RGB bytes of a w x h image; returns RGB bytes of ow x oh.
export function resizeBicubic(src, w, h, ow, oh) {
  if (ow === w && oh === h) return src.slice();
  const horiz = coefficients(w, ow), vert = coefficients(h, oh);
  const first = vert.bounds[0], last = vert.bounds[oh * 2 - 2] + vert.bounds[oh * 2 - 1];
  let img = src, iw = w, ih = h, yoff = 0;
  if (ow !== w) {  // horizontal pass over the rows the vertical pass will use
    const rows = last - first, tmp = new Uint8Array(ow * rows * 3);
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < ow; x++) {
        const xmin = horiz.bounds[x * 2], xmax = horiz.bounds[x * 2 + 1], k = x * horiz.ksize;
        let s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
        for (let i = 0; i < xmax; i++) {
          const p = ((y + first) * w + xmin + i) * 3, c = horiz.kk[k + i];
          s0 += src[p] * c; s1 += src[p + 1] * c; s2 += src[p + 2] * c;
        }
        const d = (y * ow + x) * 3;
        tmp[d] = clip8(s0); tmp[d + 1] = clip8(s1); tmp[d + 2] = clip8(s2);
      }
    }
    img = tmp; iw = ow; ih = rows; yoff = first;
  }
  if (oh === h) return img;
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    const ymin = vert.bounds[y * 2] - yoff, ymax = vert.bounds[y * 2 + 1], k = y * vert.ksize;
    for (let x = 0; x < iw; x++) {
      let s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
      for (let i = 0; i < ymax; i++) {
        const p = ((ymin + i) * iw + x) * 3, c = vert.kk[k + i];
        s0 += img[p] * c; s1 += img[p + 1] * c; s2 += img[p + 2] * c;
      }
      const d = (y * ow + x) * 3;
      out[d] = clip8(s0); out[d + 1] = clip8(s1); out[d + 2] = clip8(s2);
    }
  }
  return out;
}

// The (left, top, right, bottom) region of an image of width w (PIL's Image.crop inside the image), as RGB.
export function cropRGB(src, w, [left, top, right, bottom], ch = 3) {
  const cw = right - left, ch3 = cw * 3, out = new Uint8Array(cw * (bottom - top) * 3);
  for (let y = top, o = 0; y < bottom; y++, o += ch3) {
    const row = (y * w + left) * ch;
    if (ch === 3) { out.set(src.subarray(row, row + ch3), o); continue; }
    for (let x = 0, s = row, d = o; x < cw; x++, s += ch, d += 3) { out[d] = src[s]; out[d + 1] = src[s + 1]; out[d + 2] = src[s + 2]; }
  }
  return out;
}
