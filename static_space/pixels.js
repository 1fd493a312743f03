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

export function resizeArea(src, w, h, dw, dh, ch = 3) {
  const scaleX = w / dw, scaleY = h / dh;
  const ix = Math.round(scaleX), iy = Math.round(scaleY);
  if (Math.abs(scaleX - ix) < 2.220446049250313e-16 && Math.abs(scaleY - iy) < 2.220446049250313e-16) {
    return resizeAreaFast(src, w, h, dw, dh, ix, iy, ch);
  }
  const xt = areaTable(w, dw, scaleX), yt = areaTable(h, dh, scaleY), n = dw * 3, f = Math.fround;
  const taps = xt.length, xd = new Int32Array(taps), xs = new Int32Array(taps), xalpha = xt.alpha;
  for (let t = 0; t < taps; t++) { xd[t] = xt.di[t] * 3; xs[t] = xt.si[t] * ch; }
  // Storing into a Uint8ClampedArray clamps and rounds halves to even: OpenCV's saturate_cast<uchar>(float).
  const out = new Uint8ClampedArray(dw * dh * 3), sum = new Float32Array(n), row = new Float32Array(n);
  let prevDy = yt.di[0], prevSy = -1;
  for (let k = 0; k < yt.length; k++) {
    const dy = yt.di[k], sy = yt.si[k], beta = yt.alpha[k];
    if (dy !== prevDy) { out.set(sum, prevDy * n); sum.fill(0); prevDy = dy; }
    if (sy !== prevSy) {  // the horizontal pass of a source row shared by two output rows is done once
      // Tap by tap in OpenCV's order, float32 throughout: the product is rounded to float32 (fround), and the
      // sum stored into a Float32Array is rounded once more, exactly as a float32 add (a double add of two
      // floats, rounded to float, is the float add).
      row.fill(0);
      const base = sy * w * ch;
      for (let t = 0; t < taps; t++) {
        const s = base + xs[t], d = xd[t], a = xalpha[t];
        row[d] += f(src[s] * a); row[d + 1] += f(src[s + 1] * a); row[d + 2] += f(src[s + 2] * a);
      }
      prevSy = sy;
    }
    for (let i = 0; i < n; i++) sum[i] += f(beta * row[i]);
  }
  out.set(sum, prevDy * n);
  return new Uint8Array(out.buffer);
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
