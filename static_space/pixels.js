// Pixel operations of the fer-hf page, bit-exact copies of what the Python path does to an image: Pillow's BICUBIC
// resize (FerTransform, for the model) and crop, with Python's rounding (OpenCV's INTER_AREA shrink before detection
// is in WebAssembly: pixels.c, called by yunet.js). Images are bytes row by row, RGB or, where a function takes
// `ch` = 4, RGBA straight from a canvas (alpha skipped: the page composites on white first). Reading the canvas's
// RGBA directly saves a full-image RGB copy per photo (scripts/benchmark_static_space.py).

// Python's round(): halves go to the even neighbour (JavaScript's Math.round sends them up).
export function pyRound(x) {
  const r = Math.round(x);
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
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

// resizeBicubic(cropRGB(image, w, box, ch), ...) in WebAssembly (pixels.c's bicubic_resize, the same integer passes
// with the coefficients above): the same bytes, several times faster. One per page, with its own memory.
export class FaceResizer {
  static async load(module) {  // module: kernels.wasm, compiled
    const made = await WebAssembly.instantiate(module);
    return new FaceResizer((made.instance ?? made).exports);
  }

  constructor(k) {
    this.k = k;
    this.base = (k.__heap_base.value + 15) & ~15;
  }

  // The box [left, top, right, bottom] of an RGB (ch 3) or RGBA (ch 4) image of width w, resized to ow x oh: RGB bytes.
  resize(image, w, ch, box, ow, oh) {
    const [left, top, right, bottom] = box, cw = right - left, rows = bottom - top;
    const horiz = coefficients(cw, ow), vert = coefficients(rows, oh), k = this.k;
    const sizes = [cw * rows * ch, 4 * horiz.bounds.length, 4 * horiz.kk.length, 4 * vert.bounds.length,
                   4 * vert.kk.length, ow * rows * 3, ow * oh * 3];
    const at = [];
    let end = this.base;
    for (const n of sizes) { at.push(end); end = (end + n + 15) & ~15; }
    if (end > k.memory.buffer.byteLength) k.memory.grow(Math.ceil((end - k.memory.buffer.byteLength) / 65536));
    const mem = new Uint8Array(k.memory.buffer);
    for (let y = 0; y < rows; y++) {  // the region's rows, as they are (RGBA stays RGBA)
      const from = ((top + y) * w + left) * ch;
      mem.set(image.subarray(from, from + cw * ch), at[0] + y * cw * ch);
    }
    new Int32Array(k.memory.buffer, at[1], horiz.bounds.length).set(horiz.bounds);
    new Int32Array(k.memory.buffer, at[2], horiz.kk.length).set(horiz.kk);
    new Int32Array(k.memory.buffer, at[3], vert.bounds.length).set(vert.bounds);
    new Int32Array(k.memory.buffer, at[4], vert.kk.length).set(vert.kk);
    k.bicubic_resize(at[0], cw, rows, ch, cw * ch, ow, oh, at[1], at[2], horiz.ksize, at[3], at[4], vert.ksize, at[5], at[6]);
    return new Uint8Array(k.memory.buffer, at[6], ow * oh * 3).slice();
  }
}
