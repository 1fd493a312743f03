// The page: photo in (choose, drop, paste, webcam), faces and emotions out, all in this browser tab.
// The last result is window.ferResult, in the Gradio Space API's shape:
//   {emotion, confidence, faces: [{box, emotion, confidence, scores, detection_score}]}  (+ whole_image, note)
// Timings (performance.now(), ms since navigation start) are in window.ferTimings for the benchmark.
import * as ort from './ort/ort.wasm.min.mjs';
import { FerPipeline } from './fer.js';

ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;  // the copies next to this page; never a CDN
// Threads need cross-origin isolation (the Space's README asks Hugging Face for the headers). Half the cores, at
// most 4: on a 2-core machine one thread, since two were 3x slower there with the other core busy (benchmark).
// `?threads=N` in the page's address overrides it (benchmarks/benchmark_static_space.py --threads).
const halfTheCores = Math.max(1, Math.min(4, Math.floor((navigator.hardwareConcurrency || 2) / 2)));
const askedThreads = Number.parseInt(new URLSearchParams(location.search).get('threads'), 10);
ort.env.wasm.numThreads = !self.crossOriginIsolated ? 1 : askedThreads > 0 ? Math.min(askedThreads, 16) : halfTheCores;

const $ = (id) => document.getElementById(id);
const NO_FACE = "No face found, so this is the prediction for the whole image (tick 'faces are already cropped' for crops).";
const timings = (window.ferTimings = { runs: 0, threads: ort.env.wasm.numThreads });
window.ferResult = null;
window.ferError = null;

class UserError extends Error {}
let stream = null;  // the webcam's MediaStream while it is on

const ready = FerPipeline.create(ort, '.').then((pipeline) => {
  timings.models_ready_ms = performance.now();
  Object.assign(timings, pipeline.loadTimings);
  const c = pipeline.config;
  $('status').textContent = 'Ready. Choose, drop or paste a photo, or start the webcam.';
  $('about').textContent = `Model: ${c.architecture || 'fer-hf'} (${c.precision} ONNX, ${c.image_size} px input), ` +
    `${c.labels.length} classes; faces found with YuNet (photos shrunk towards ${c.detector.max_side} px). ` +
    `Details in this Space's README (model card).`;
  document.body.dataset.state = 'ready';
  return pipeline;
}).catch((err) => {
  $('status').textContent = location.protocol === 'file:'
    ? 'Open this page through a web server (python -m http.server -d SITE), not as a file: browsers do not let a ' +
      'file:// page load its models.'
    : `The models could not be loaded: ${err.message || err}`;
  document.body.dataset.state = 'error';
  throw err;
});

// RGB pixels of an image file, with the checks and messages of the Gradio Space.
async function decode(blob, name, config) {
  if (blob.size > config.max_bytes) {
    throw new UserError(`${name} is ${(blob.size / 2 ** 20).toFixed(1)} MB; the limit is ${config.max_bytes / 2 ** 20} MB.`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch {
    throw new UserError(`${name} cannot be used: not an image file this browser reads (PNG, JPEG, GIF, WebP, BMP, ...).`);
  }
  const { width: w, height: h } = bitmap;
  if (Math.min(w, h) < 2) throw new UserError(`${name} cannot be used: ${w}x${h} pixels is too small to hold a face.`);
  if (w * h > config.max_pixels) {
    throw new UserError(`${name} cannot be used: ${w}x${h} pixels is over the limit of ${config.max_pixels / 1e6} megapixels.`);
  }
  return { ...pixels(bitmap, w, h), source: bitmap };
}

// RGBA bytes of anything drawable, composited on white (transparent pixels become white, as in fer_hf); the
// pipeline reads RGBA as it is (no RGB copy of the whole photo). One canvas serves every photo and frame: a new
// one each time cost ~0.7 ms a photo (getImageData copies the pixels out, so reusing it is safe).
let scratch = null;
function pixels(drawable, w, h) {
  scratch ??= new OffscreenCanvas(w, h).getContext('2d', { willReadFrequently: true });
  const ctx = scratch;
  if (ctx.canvas.width !== w || ctx.canvas.height !== h) { ctx.canvas.width = w; ctx.canvas.height = h; }
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  ctx.drawImage(drawable, 0, 0, w, h);
  return { pixels: ctx.getImageData(0, 0, w, h).data, w, h };
}

function apiResult(out) {
  const main = out.faces[0];  // largest first
  const result = { emotion: main.emotion, confidence: Math.round(main.confidence * 1e4) / 1e4,
                   faces: out.noFace ? [] : out.faces };
  if (out.noFace) {
    result.whole_image = main;
    result.note = NO_FACE;
  }
  return result;
}

// The photo with a box and an "emotion 87%" label per face (space/app.py's annotate).
function draw(source, w, h, out) {
  const canvas = $('canvas'), ctx = canvas.getContext('2d');
  canvas.width = w; canvas.height = h;
  ctx.drawImage(source, 0, 0, w, h);
  const line = Math.max(2, Math.round(Math.max(w, h) / 250)), size = Math.max(12, Math.round(Math.max(w, h) / 35));
  ctx.font = `${size}px sans-serif`;
  ctx.textBaseline = 'top';
  out.faces.forEach((face, i) => {
    const [x, y, bw, bh] = face.box, colour = out.noFace ? 'rgb(255,170,0)' : 'rgb(40,220,90)';
    if (!out.noFace) {
      ctx.strokeStyle = colour; ctx.lineWidth = line;
      ctx.strokeRect(x + line / 2, y + line / 2, bw - line, bh - line);
    }
    const text = `${out.faces.length > 1 ? `${i + 1}: ` : ''}${face.emotion} ${Math.round(face.confidence * 100)}%`;
    const tw = ctx.measureText(text).width + 2 * line, th = size + 2 * line;
    const ty = y - th >= 0 ? y - th : y + (out.noFace ? 0 : bh);
    ctx.fillStyle = colour; ctx.fillRect(x, ty, tw, th);
    ctx.fillStyle = '#000'; ctx.fillText(text, x + line, ty + line);
  });
}

function bars(face) {
  const rows = Object.entries(face.scores).sort((a, b) => b[1] - a[1]);
  $('bars').innerHTML = '<h2>Main face</h2>' + rows.map(([label, p]) =>
    `<div class="bar" data-label="${label}"><span>${label}</span><div class="track"><div class="fill" ` +
    `style="width:${(100 * p).toFixed(1)}%"></div></div><span class="pct">${(100 * p).toFixed(1)}%</span></div>`).join('');
}

function show(message, state) {
  $('message').textContent = message;
  document.body.dataset.state = state;
}

// One photo (File or Blob) through the whole pipeline.
async function analyse(blob, name) {
  if (stream) stopWebcam();  // a photo replaces the live view
  const t0 = performance.now();
  document.body.dataset.state = 'busy';
  try {
    const pipeline = await ready;
    const t1 = performance.now();
    const image = await decode(blob, name, pipeline.config);
    const t2 = performance.now();
    const out = await pipeline.recognize(image.pixels, image.w, image.h, { detect: !$('cropped').checked });
    const t3 = performance.now();
    publish(out, image);
    timings.last = { wait_ms: t1 - t0, ...out.timings, decode_ms: t2 - t1, render_ms: performance.now() - t3,
                     total_ms: performance.now() - t1, faces: out.faces.length, width: image.w, height: image.h };
    image.source.close?.();
  } catch (err) {
    window.ferResult = null;
    window.ferError = err instanceof UserError ? err.message : `${name} could not be analysed: ${err.message || err}`;
    $('bars').innerHTML = '';
    $('json').textContent = '';
    show(window.ferError, 'error');
    if (!(err instanceof UserError)) console.error(err);
  }
  timings.runs += 1;
}

function publish(out, image) {
  draw(image.source, image.w, image.h, out);
  bars(out.faces[0]);
  const result = apiResult(out);
  const n = out.faces.length;
  const found = out.noFace ? NO_FACE : n === 1 ? '1 face found.' : `${n} faces found; the scores are for the largest.`;
  $('json').textContent = JSON.stringify(result, null, 2);
  window.ferResult = result;
  window.ferError = null;
  timings.first_result_ms ??= performance.now();
  show(found, 'done');
}

// --- inputs: file chooser, drop, paste, webcam -----------------------------------------------------------
$('file').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) analyse(f, f.name); e.target.value = ''; });
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer.files[0];
  if (f) analyse(f, f.name); else show('Drop an image file (PNG, JPEG, WebP, ...).', 'error');
});
window.addEventListener('paste', (e) => {
  const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file');
  if (item) { e.preventDefault(); analyse(item.getAsFile(), 'the pasted image'); }
});

async function webcamLoop(pipeline) {
  const video = $('video');
  while (stream) {
    if (video.readyState >= 2 && video.videoWidth) {
      const w = video.videoWidth, h = video.videoHeight, frame = pixels(video, w, h);
      const out = await pipeline.recognize(frame.pixels, w, h, { detect: !$('cropped').checked });
      if (!stream) break;
      publish(out, { source: video, w, h });
    }
    await new Promise((r) => requestAnimationFrame(r));
  }
}

function stopWebcam() {
  stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $('webcam').textContent = 'Start webcam';
  $('webcam').classList.remove('on');
}

$('webcam').addEventListener('click', async () => {
  const button = $('webcam'), video = $('video');
  if (stream) {
    stopWebcam();
    return;
  }
  try {
    const pipeline = await ready;
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'user' }, audio: false });
    video.srcObject = stream;
    await video.play();
    button.textContent = 'Stop webcam'; button.classList.add('on');
    show('Webcam on: frames are analysed here and never leave this device.', 'done');
    webcamLoop(pipeline);
  } catch (err) {
    stream = null;
    show(`The webcam could not be started: ${err.message || err}`, 'error');
  }
});

window.ferAnalyse = analyse;  // for scripts: await ferAnalyse(blob, name)
