// fer-hf in the browser: the pre- and post-processing of fer_hf/faces.py and fer_hf/inference.py, step by step.
//
// Each step reproduces what the Python path computes, so a face gets the same box and scores here as from
// scripts/predict.py with the same ONNX file:
//   1. downscale to `max_side` on the long side with OpenCV's INTER_AREA       (faces._downscale)
//   2. YuNet on the BGR image zero-padded to a multiple of 32, decoded and NMS'd as cv2.FaceDetectorYN does
//   3. boxes back to the full image, rounded as Python rounds, largest face first (YuNetDetector.detect)
//   4. the FER-style square crop with a margin, clipped to the image             (faces.crop_box)
//   5. Pillow's BICUBIC resize (antialiased, fixed-point, two passes)             (FerTransform, train=False)
//   6. (x - mean*255) / (std*255), all faces in one batch, temperature, softmax   (FerCollator, predict_crops)
// Nothing here touches the DOM; app.js does. `ort` is onnxruntime-web, passed in.

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
// Step 1: cv2.resize(..., interpolation=INTER_AREA), shrinking only (computeResizeAreaTab + ResizeArea_Invoker).

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
function resizeAreaFast(src, w, h, dw, dh, sx, sy) {
  const out = new Uint8Array(dw * dh * 3), area = sx * sy, inv = Math.fround(1 / area), n = dw * 3;
  const sum = new Int32Array(n);
  for (let y = 0; y < dh; y++) {
    sum.fill(0);
    for (let j = 0; j < sy; j++) {
      const row = (y * sy + j) * w * 3;
      for (let x = 0; x < dw; x++) {
        const d = x * 3;
        for (let i = 0, s = row + x * sx * 3; i < sx; i++, s += 3) { sum[d] += src[s]; sum[d + 1] += src[s + 1]; sum[d + 2] += src[s + 2]; }
      }
    }
    const o = y * n;
    if (area === 4) for (let i = 0; i < n; i++) out[o + i] = (sum[i] + 2) >> 2;
    else for (let i = 0; i < n; i++) out[o + i] = satU8(Math.fround(sum[i] * inv));
  }
  return out;
}

export function resizeArea(src, w, h, dw, dh) {
  const scaleX = w / dw, scaleY = h / dh;
  const ix = Math.round(scaleX), iy = Math.round(scaleY);
  if (Math.abs(scaleX - ix) < 2.220446049250313e-16 && Math.abs(scaleY - iy) < 2.220446049250313e-16) {
    return resizeAreaFast(src, w, h, dw, dh, ix, iy);
  }
  const xt = areaTable(w, dw, scaleX), yt = areaTable(h, dh, scaleY), n = dw * 3, f = Math.fround;
  const xsi = xt.si, xalpha = xt.alpha;
  const first = new Int32Array(dw + 1);  // the taps of output column dx are first[dx] .. first[dx + 1] - 1
  for (let t = 0; t < xt.length; t++) first[xt.di[t] + 1] = t + 1;
  for (let dx = 1; dx <= dw; dx++) first[dx] = Math.max(first[dx], first[dx - 1]);
  // Storing into a Uint8ClampedArray clamps and rounds halves to even: OpenCV's saturate_cast<uchar>(float).
  const out = new Uint8ClampedArray(dw * dh * 3), sum = new Float32Array(n), row = new Float32Array(n);
  let prevDy = yt.di[0], prevSy = -1;
  const flush = (dy) => out.set(sum, dy * n);
  for (let k = 0; k < yt.length; k++) {
    const dy = yt.di[k], sy = yt.si[k], beta = yt.alpha[k];
    if (dy !== prevDy) { flush(prevDy); sum.fill(0); prevDy = dy; }
    if (sy !== prevSy) {  // the horizontal pass of a source row shared by two output rows is done once
      const base = sy * w * 3;
      for (let dx = 0, d = 0; dx < dw; dx++, d += 3) {
        let r = 0, g = 0, b = 0;  // float32 sums, as OpenCV's buffer row
        for (let t = first[dx], end = first[dx + 1]; t < end; t++) {
          const s = base + xsi[t] * 3, a = xalpha[t];
          r = f(r + f(src[s] * a)); g = f(g + f(src[s + 1] * a)); b = f(b + f(src[s + 2] * a));
        }
        row[d] = r; row[d + 1] = g; row[d + 2] = b;
      }
      prevSy = sy;
    }
    for (let i = 0; i < n; i++) sum[i] += f(beta * row[i]);
  }
  flush(prevDy);
  return new Uint8Array(out.buffer);
}

// ---------------------------------------------------------------------------------------------------------
// Step 2: cv2.FaceDetectorYN (OpenCV's face_detect.cpp): input, decode, NMS.

export function yunetInput(rgb, w, h) {
  const padW = Math.floor((w - 1) / 32 + 1) * 32, padH = Math.floor((h - 1) / 32 + 1) * 32;
  const data = new Float32Array(3 * padW * padH);  // zero padding at the right and bottom
  const plane = padW * padH;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 3, d = y * padW + x;
      data[d] = rgb[s + 2]; data[plane + d] = rgb[s + 1]; data[2 * plane + d] = rgb[s];  // BGR planes
    }
  }
  return { data, padW, padH };
}

function rectOverlap(a, b) {  // 1 - jaccardDistance of two integer Rect2i
  const areaA = a[2] * a[3], areaB = b[2] * b[3];
  if (areaA + areaB <= 0) return 1.0;
  const x1 = Math.max(a[0], b[0]), y1 = Math.max(a[1], b[1]);
  const x2 = Math.min(a[0] + a[2], b[0] + b[2]), y2 = Math.min(a[1] + a[3], b[1] + b[3]);
  const inter = (x2 - x1 > 0 && y2 - y1 > 0) ? (x2 - x1) * (y2 - y1) : 0;
  return Math.fround(inter / (areaA + areaB - inter));
}

// cv::dnn::NMSBoxes with eta 1: scores above the threshold, stable-sorted, greedy suppression.
export function nmsBoxes(boxes, scores, scoreThreshold, nmsThreshold, topK = 5000) {
  let order = scores.map((s, i) => [s, i]).filter(([s]) => s > scoreThreshold);
  order.sort((a, b) => b[0] - a[0]);
  if (topK > 0 && topK < order.length) order = order.slice(0, topK);
  const keep = [];
  for (const [, i] of order) {
    if (keep.every((k) => rectOverlap(boxes[i], boxes[k]) <= nmsThreshold)) keep.push(i);
  }
  return keep;
}

// outputs: {cls_8, obj_8, bbox_8, kps_8, ... _16, _32} as Float32Arrays. Rows: [x, y, w, h, 10 landmarks, score].
export function decodeYunet(outputs, padW, padH, scoreThreshold, nmsThreshold, topK = 5000) {
  const f = Math.fround, faces = [];
  for (const stride of [8, 16, 32]) {
    const cols = Math.floor(padW / stride), rows = Math.floor(padH / stride);
    const cls = outputs[`cls_${stride}`], obj = outputs[`obj_${stride}`];
    const bbox = outputs[`bbox_${stride}`], kps = outputs[`kps_${stride}`];
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const idx = r * cols + c;
        const clsScore = Math.min(Math.max(cls[idx], 0), 1), objScore = Math.min(Math.max(obj[idx], 0), 1);
        const score = f(Math.sqrt(f(clsScore * objScore)));
        if (score < scoreThreshold) continue;
        const cx = f(f(c + bbox[idx * 4]) * stride), cy = f(f(r + bbox[idx * 4 + 1]) * stride);
        const w = f(f(Math.exp(bbox[idx * 4 + 2])) * stride), h = f(f(Math.exp(bbox[idx * 4 + 3])) * stride);
        const face = [f(cx - w / 2), f(cy - h / 2), w, h];
        for (let n = 0; n < 5; n++) {
          face.push(f(f(kps[idx * 10 + 2 * n] + c) * stride), f(f(kps[idx * 10 + 2 * n + 1] + r) * stride));
        }
        face.push(score);
        faces.push(face);
      }
    }
  }
  if (faces.length <= 1) return faces;
  const boxes = faces.map((v) => [Math.trunc(v[0]), Math.trunc(v[1]), Math.trunc(v[2]), Math.trunc(v[3])]);
  return nmsBoxes(boxes, faces.map((v) => v[14]), scoreThreshold, nmsThreshold, topK).map((i) => faces[i]);
}

// ---------------------------------------------------------------------------------------------------------
// Step 4: fer_hf.faces.crop_box.

export function cropBox(box, width, height, margin) {
  const [x, y, w, h] = box;
  const side = Math.max(w, h) * (1 + 2 * margin);
  const cx = x + w / 2, cy = y + h / 2;
  const left = Math.max(0, pyRound(cx - side / 2)), top = Math.max(0, pyRound(cy - side / 2));
  const right = Math.min(width, pyRound(cx + side / 2)), bottom = Math.min(height, pyRound(cy + side / 2));
  if (right - left < 2 || bottom - top < 2) throw new Error(`face box ${box} lies outside the ${width}x${height} image`);
  return [left, top, right, bottom];
}

// ---------------------------------------------------------------------------------------------------------
// Step 5: Pillow's Image.resize(size, BICUBIC) (libImaging/Resample.c): a = -0.5, support widened by the
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

export function cropRGB(rgb, w, [left, top, right, bottom]) {
  const cw = right - left, ch = bottom - top, out = new Uint8Array(cw * ch * 3);
  for (let y = 0; y < ch; y++) out.set(rgb.subarray(((top + y) * w + left) * 3, ((top + y) * w + right) * 3), y * cw * 3);
  return out;
}

export function softmax(logits, temperature) {
  const z = Array.from(logits, (v) => (temperature ? v / temperature : v));
  const m = Math.max(...z), e = z.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

// RGBA (canvas ImageData) -> RGB bytes.
export function rgbaToRgb(rgba, w, h) {
  const out = new Uint8Array(w * h * 3);
  for (let i = 0, j = 0; i < w * h * 4; i += 4, j += 3) { out[j] = rgba[i]; out[j + 1] = rgba[i + 1]; out[j + 2] = rgba[i + 2]; }
  return out;
}

// ---------------------------------------------------------------------------------------------------------

// fer_hf.faces.detection_scale: towards max_side on the long side, not below min_scale (small faces stay
// findable) unless the photo would stay over max_detect_side; never enlarged.
export function detectionScale(w, h, d) {
  const longSide = Math.max(w, h);
  const scale = Math.max(d.max_side / longSide, d.min_scale || 0);
  const cap = d.max_detect_side ? Math.max(d.max_side, d.max_detect_side) / longSide : Infinity;
  return Math.min(1.0, scale, cap);
}

export class FerPipeline {
  // config: preprocessing.json as written by scripts/build_static_space.py
  constructor(ort, config, detector, classifier) {
    Object.assign(this, { ort, config, detector, classifier });
    this.labels = config.labels;
    this.inputName = classifier.inputNames[0];
  }

  static async create(ort, base = '.') {
    const config = await (await fetch(`${base}/preprocessing.json`)).json();
    const t0 = performance.now();
    const detector = await ort.InferenceSession.create(`${base}/${config.detector.file}`,  // + the runtime itself
                                                       { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    const t1 = performance.now();
    // No graph optimisation for the classifier: on the int8 ViT it cost 0.6-3 s of session creation in wasm
    // and bought no measurable speed (scripts/benchmark_static_space.py); the logits are the same.
    const classifier = await ort.InferenceSession.create(`${base}/${config.model_file}`,
                                                         { executionProviders: ['wasm'], graphOptimizationLevel: 'disabled' });
    const pipeline = new FerPipeline(ort, config, detector, classifier);
    const t2 = performance.now();
    // One run on a blank 600x400 image while the page loads: first runs allocate and compile (wasm and JS
    // alike), so the visitor's first photo does not pay for that.
    await pipeline.recognize(new Uint8Array(600 * 400 * 3).fill(128), 600, 400);
    pipeline.loadTimings = { runtime_and_detector_ms: t1 - t0, classifier_ms: t2 - t1, warmup_ms: performance.now() - t2 };
    return pipeline;
  }

  // Faces in an RGB image, largest first: [{box, score, landmarks}] (YuNetDetector.detect).
  async detect(rgb, w, h) {
    const d = this.config.detector, t0 = performance.now();
    const scale = detectionScale(w, h, d);
    let small = rgb, sw = w, sh = h;
    if (scale < 1) {
      sw = Math.max(1, pyRound(w * scale)); sh = Math.max(1, pyRound(h * scale));
      small = resizeArea(rgb, w, h, sw, sh);
    }
    const { data, padW, padH } = yunetInput(small, sw, sh);
    const t1 = performance.now();
    const out = await this.detector.run({ [this.detector.inputNames[0]]: new this.ort.Tensor('float32', data, [1, 3, padH, padW]) });
    const t2 = performance.now();
    const arrays = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data]));
    const rows = decodeYunet(arrays, padW, padH, d.score_threshold, d.nms_threshold, d.top_k);
    const faces = rows.map((r) => ({
      box: r.slice(0, 4).map((v) => pyRound(v / scale)),
      score: r[14],
      landmarks: [0, 1, 2, 3, 4].map((i) => [r[4 + 2 * i] / scale, r[5 + 2 * i] / scale]),
    }));
    this.detectTimings = { shrink_ms: t1 - t0, yunet_ms: t2 - t1, postprocess_ms: performance.now() - t2 };
    return faces.sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
  }

  // Probabilities for crops ([{rgb, w, h}]) in ONE network call (EmotionRecognizer.predict_crops).
  async classify(crops) {
    const { image_size: size, mean, std } = this.config;
    const plane = size * size, x = new Float32Array(crops.length * 3 * plane);
    // float32 arithmetic step by step, as torch does it (FerCollator.normalise): a 1-ulp difference in a pixel
    // can move a value across a rounding step of the int8 model's input quantisation
    const f = Math.fround, m = mean.map((v) => f(f(v) * 255)), s = std.map((v) => f(f(v) * 255));
    crops.forEach((crop, n) => {
      const pixels = resizeBicubic(crop.rgb, crop.w, crop.h, size, size);
      for (let i = 0; i < plane; i++) {
        for (let c = 0; c < 3; c++) x[(n * 3 + c) * plane + i] = f(pixels[i * 3 + c] - m[c]) / s[c];
      }
    });
    const out = await this.classifier.run({ [this.inputName]: new this.ort.Tensor('float32', x, [crops.length, 3, size, size]) });
    const logits = out[this.classifier.outputNames[0]].data, k = this.labels.length;
    return crops.map((_, n) => softmax(logits.subarray(n * k, (n + 1) * k), this.config.calibration_temperature));
  }

  face(box, probs, detectionScore) {
    let best = 0;
    probs.forEach((p, i) => { if (p > probs[best]) best = i; });
    return { box, emotion: this.labels[best], confidence: probs[best],
             scores: Object.fromEntries(this.labels.map((l, i) => [l, probs[i]])), detection_score: detectionScore };
  }

  // {faces, noFace, timings}: every face found, largest first. Without detection (crops), or when the detector
  // finds nothing (noFace), the whole image is the one face, as scripts/predict.py and the Gradio Space do.
  async recognize(rgb, w, h, { detect = true } = {}) {
    const t0 = performance.now();
    const found = detect ? await this.detect(rgb, w, h) : [];
    const t1 = performance.now();
    const boxes = found.length ? found.map((f) => cropBox(f.box, w, h, this.config.margin)) : [[0, 0, w, h]];
    const crops = boxes.map((b) => ({ rgb: cropRGB(rgb, w, b), w: b[2] - b[0], h: b[3] - b[1] }));
    const probs = await this.classify(crops);
    const t2 = performance.now();
    const faces = found.length ? found.map((f, i) => this.face(f.box, probs[i], f.score))
      : [this.face([0, 0, w, h], probs[0], null)];
    return { faces, noFace: detect && !found.length,
             timings: { detect_ms: t1 - t0, ...(detect ? this.detectTimings : {}), classify_ms: t2 - t1, total_ms: t2 - t0 } };
  }
}
