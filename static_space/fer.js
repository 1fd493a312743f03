// fer-hf in the browser: the pre- and post-processing of fer_hf/faces.py and fer_hf/inference.py, step by step.
//
// Each step reproduces what the Python path computes, so a face gets the same box and scores here as from
// scripts/predict.py with the same ONNX file:
//   1. downscale to `max_side` on the long side with OpenCV's INTER_AREA       (faces._downscale)
//   2. YuNet on the BGR image zero-padded to a multiple of 32, decoded and NMS'd as cv2.FaceDetectorYN does
//      (1 and the network in WebAssembly: yunet.js)
//   3. boxes back to the full image, rounded as Python rounds, largest face first (YuNetDetector.detect)
//   4. the FER-style square crop, framed as the model's training faces, clipped  (faces.crop_box)
//   5. Pillow's BICUBIC resize (antialiased, fixed-point, two passes)             (FerTransform, train=False)
//   6. grey where the model reads grey, (x - mean*255) / (std*255), all faces in one batch, temperature, softmax
//                                                                                   (FerCollator, predict_crops)
// Step 5 is in pixels.js (and pixels.c). Nothing here touches the DOM; app.js does. `ort` is onnxruntime-web,
// passed in; an int8 ViT runs on the page's own kernels instead (vit.js), onnxruntime-web at most for its stem.

import { FaceResizer, pyRound } from './pixels.js';
import { ViT } from './vit.js';
import { YuNet } from './yunet.js';

// ---------------------------------------------------------------------------------------------------------
// Step 2: cv2.FaceDetectorYN (OpenCV's face_detect.cpp): decode, NMS (its input and network: yunet.js).

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

// framing: {scale, shift_x, shift_y, basis} (fer_hf.faces.Framing), the same float operations in the same order
export function cropBox(box, width, height, framing) {
  const [x, y, w, h] = box;
  const size = framing.basis === "width" ? w : Math.max(w, h);
  const side = size * framing.scale;
  const cx = x + w / 2 + framing.shift_x * size, cy = y + h / 2 + framing.shift_y * size;
  const left = Math.max(0, pyRound(cx - side / 2)), top = Math.max(0, pyRound(cy - side / 2));
  const right = Math.min(width, pyRound(cx + side / 2)), bottom = Math.min(height, pyRound(cy + side / 2));
  if (right - left < 2 || bottom - top < 2) throw new Error(`face box ${box} lies outside the ${width}x${height} image`);
  return [left, top, right, bottom];
}

// PIL's "L" in integers (transforms.to_grey), in place on interleaved RGB bytes: R = G = B = the grey value
export function toGrey(rgb) {
  for (let i = 0; i < rgb.length; i += 3) {
    const v = (rgb[i] * 19595 + rgb[i + 1] * 38470 + rgb[i + 2] * 7471 + 32768) >>> 16;
    rgb[i] = rgb[i + 1] = rgb[i + 2] = v;
  }
  return rgb;
}

export function softmax(logits, temperature) {
  const z = Array.from(logits, (v) => (temperature ? v / temperature : v));
  const m = Math.max(...z), e = z.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
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

// Bytes a pixel of a w x h image: 3 (RGB) or 4 (RGBA).
function channels(image, w, h) {
  const ch = image.length / (w * h);
  if (ch !== 3 && ch !== 4) throw new Error(`expected ${w}x${h} RGB or RGBA bytes, got ${image.length} bytes`);
  return ch;
}

export class FerPipeline {
  // config: preprocessing.json as written by scripts/build_static_space.py
  // classifier: an onnxruntime-web session of the whole model, or of its stem.onnx when vit (vit.js) runs the
  // rest, or null when vit runs it all; resizer: pixels.js's FaceResizer
  constructor(ort, config, detector, resizer, classifier, vit = null) {
    Object.assign(this, { ort, config, detector, resizer, classifier, vit });
    this.labels = config.labels;
  }

  static async create(ort, base = '.') {
    const config = await (await fetch(`${base}/preprocessing.json`)).json();
    const t0 = performance.now();
    const bytes = async (url) => (await fetch(url)).arrayBuffer();
    // compiled once, while the runtime loads; YuNet and the ViT each get their own instance (their own memory).
    // kernels-relaxed.wasm fuses multiply-adds (relaxed SIMD: Chrome and Edge since 114); a browser that cannot
    // validate it gets kernels.wasm. `?kernels=simd` in the page's address forces the latter (tests, benchmark).
    const plainOnly = new URLSearchParams(globalThis.location?.search).get('kernels') === 'simd';
    const kernels = (async () => {
      const relaxed = plainOnly ? null : await bytes(`${base}/kernels-relaxed.wasm`);
      const use = relaxed && WebAssembly.validate(relaxed) ? relaxed : await bytes(`${base}/kernels.wasm`);
      config.kernels = use === relaxed ? 'relaxed-simd' : 'simd';
      return WebAssembly.compile(use);
    })();
    const detector = Promise.all([kernels, fetch(`${base}/yunet.json`).then((r) => r.json()), bytes(`${base}/yunet.bin`)])
      .then(([wasm, program, weights]) => YuNet.load({ wasm, program, weights }));
    // the int8 ViT on the page's own kernels (vit.json; its stem's weights in stem.bin, or stem.onnx for
    // onnxruntime-web), else the whole model in onnxruntime-web
    const program = config.vit ? fetch(`${base}/${config.vit}`).then((r) => r.json()) : null;
    const vit = program && Promise.all([kernels, program, bytes(`${base}/${config.model_file}`),
                                        program.then((p) => (p.stem.file ? bytes(`${base}/${p.stem.file}`) : null))])
      .then(([wasm, prog, model, stem]) => ViT.load(wasm, prog, model, stem));
    const stem = (await program)?.stem;
    const file = !config.vit ? config.model_file : stem.steps ? null : stem.onnx;
    // 'extended' fuses each int8 MatMul with its input quantisation (DynamicQuantizeMatMul): -2 ms a face for
    // +0.1 s of session creation on the int8 ViT; 'all' adds only CPU-layout rewrites. Same logits (parity test).
    const classifier = file && await ort.InferenceSession.create(`${base}/${file}`,  // + the runtime itself
                                                                 { executionProviders: ['wasm'], graphOptimizationLevel: 'extended' });
    const t1 = performance.now();
    const resizer = await FaceResizer.load(await kernels);
    const pipeline = new FerPipeline(ort, config, await detector, resizer, classifier, await vit);
    const t2 = performance.now();
    // Two runs on a blank 600x400 image while the page loads: the first allocates and compiles (wasm and JS alike),
    // and the engine recompiles hot code, optimised, after it; so the visitor's first photos do not pay for that
    // (with one warm-up run the next ~8 photos were slower, up to 2x).
    const blank = new Uint8ClampedArray(600 * 400 * 4).fill(128);  // RGBA, as the page's
    for (let i = 0; i < 2; i++) await pipeline.recognize(blank, 600, 400);
    pipeline.loadTimings = { runtime_and_classifier_ms: t1 - t0, kernels_ms: t2 - t1, warmup_ms: performance.now() - t2,
                             vit_kernels: pipeline.vit ? (classifier ? 'blocks' : 'all') : 'none',
                             kernels: config.kernels };
    return pipeline;
  }

  // Faces in an RGB or RGBA image, largest first: [{box, score, landmarks}] (YuNetDetector.detect).
  async detect(image, w, h) {
    const d = this.config.detector, t0 = performance.now(), ch = channels(image, w, h);
    const scale = detectionScale(w, h, d);
    const sw = scale < 1 ? Math.max(1, pyRound(w * scale)) : w, sh = scale < 1 ? Math.max(1, pyRound(h * scale)) : h;
    const plan = this.detector.input(image, w, h, ch, sw, sh);
    const t1 = performance.now();
    const outputs = this.detector.run(plan);
    const t2 = performance.now();
    const rows = decodeYunet(outputs, plan.w, plan.h, d.score_threshold, d.nms_threshold, d.top_k);
    const faces = rows.map((r) => ({
      box: r.slice(0, 4).map((v) => pyRound(v / scale)),
      score: r[14],
      landmarks: [0, 1, 2, 3, 4].map((i) => [r[4 + 2 * i] / scale, r[5 + 2 * i] / scale]),
    }));
    this.detectTimings = { shrink_ms: t1 - t0, yunet_ms: t2 - t1, postprocess_ms: performance.now() - t2 };
    return faces.sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
  }

  // Probabilities for the faces ([{image, w, ch, box}]: a box of an RGB/RGBA image of width w) in ONE network call
  // (EmotionRecognizer.predict_crops).
  async classify(crops) {
    const { image_size: size, mean, std, grayscale } = this.config;
    const plane = size * size, x = new Float32Array(crops.length * 3 * plane);
    // float32 arithmetic step by step, as torch does it (FerCollator.normalise): a 1-ulp difference in a pixel
    // can move a value across a rounding step of the int8 model's input quantisation
    const f = Math.fround, m = mean.map((v) => f(f(v) * 255)), s = std.map((v) => f(f(v) * 255));
    crops.forEach((crop, n) => {
      const pixels = this.resizer.resize(crop.image, crop.w, crop.ch, crop.box, size, size);  // PIL's crop + BICUBIC
      if (grayscale) toGrey(pixels);
      for (let i = 0; i < plane; i++) {
        for (let c = 0; c < 3; c++) x[(n * 3 + c) * plane + i] = f(pixels[i * 3 + c] - m[c]) / s[c];
      }
    });
    let logits;
    if (this.classifier) {
      const feed = { [this.classifier.inputNames[0]]: new this.ort.Tensor('float32', x, [crops.length, 3, size, size]) };
      const first = (await this.classifier.run(feed))[this.classifier.outputNames[0]].data;  // logits, or stem tokens
      logits = this.vit ? this.vit.run(first, crops.length) : first;
    } else logits = this.vit.classify(x, crops.length);
    const k = this.labels.length;
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
  // image: RGB or RGBA bytes (a canvas's ImageData.data as it is), w x h.
  async recognize(image, w, h, { detect = true } = {}) {
    const t0 = performance.now();
    const found = detect ? await this.detect(image, w, h) : [];
    const t1 = performance.now();
    const boxes = found.length ? found.map((f) => cropBox(f.box, w, h, this.config.framing)) : [[0, 0, w, h]];
    const ch = channels(image, w, h);
    const crops = boxes.map((box) => ({ image, w, ch, box }));
    const probs = await this.classify(crops);
    const t2 = performance.now();
    const faces = found.length ? found.map((f, i) => this.face(f.box, probs[i], f.score))
      : [this.face([0, 0, w, h], probs[0], null)];
    return { faces, noFace: detect && !found.length,
             timings: { detect_ms: t1 - t0, ...(detect ? this.detectTimings : {}), classify_ms: t2 - t1, total_ms: t2 - t0 } };
  }
}
