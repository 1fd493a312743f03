// Pixel operations of the fer-hf page, bit-exact copies of what the Python path does to an image: Python's rounding,
// and PIL's crop + BICUBIC resize of each face (FerTransform, for the model), the coefficients here and the passes in
// WebAssembly (pixels.c; OpenCV's INTER_AREA shrink before detection is there too, called by yunet.js). Images are
// bytes row by row, RGB or RGBA straight from a canvas (alpha skipped: the page composites on white first).

// Python's round(): halves go to the even neighbour (JavaScript's Math.round sends them up).
export function pyRound(x) {
  const r = Math.round(x);
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

// ---------------------------------------------------------------------------------------------------------
// Pillow's Image.resize(size, BICUBIC) (libImaging/Resample.c): a = -0.5, support widened by the scale when shrinking
// (antialias), 22-bit fixed-point coefficients (PRECISION_BITS in pixels.c); horizontal pass first, uint8 in between.

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

// PIL's crop, then its BICUBIC resize, in WebAssembly: pixels.c's bicubic_resize runs the two integer passes with the
// coefficients above. One per page, with its own memory.
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
