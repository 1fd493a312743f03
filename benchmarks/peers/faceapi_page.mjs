/**
 * The face-api.js peer page for benchmarks/benchmark_static_space.py --faceapi (see faceapi_page.html).
 *
 * It speaks the static page's benchmark protocol, so the harness drives both pages with the same code: a photo is
 * handed over through the file chooser #file; window.ferTimings counts runs and holds the timings
 * (performance.now(), ms since navigation start), window.ferResult = {faces: [...]}, window.ferError a message.
 *
 * Query: ?detector=ssd (SSD MobileNet V1, the default of face-api's detectAllFaces, which its tutorial's
 * withFaceExpressions() examples use) or ?detector=tiny (TinyFaceDetector, default options: inputSize 416).
 */

import * as faceapi from './face-api.esm.js';

const detector = new URLSearchParams(location.search).get('detector') || 'ssd';
const timings = (window.ferTimings = { runs: 0, detector });
const $ = (id) => document.getElementById(id);

const ready = (async () => {
  const tf = faceapi.tf;
  // One thread, like the static page served without cross-origin isolation; without it the browser has no
  // SharedArrayBuffer, so tfjs could not start threads anyway; the flag only makes that explicit.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  // The wasm binaries from the installed @tensorflow/tfjs-backend-wasm, served from this origin: no CDN.
  tf.setWasmPaths(new URL('./wasm/', location.href).href);
  if (!(await tf.setBackend('wasm'))) throw new Error('the tfjs wasm backend did not initialise');
  await tf.ready();
  timings.backend_ready_ms = performance.now();
  const net = detector === 'tiny' ? faceapi.nets.tinyFaceDetector : faceapi.nets.ssdMobilenetv1;
  await Promise.all([net.loadFromUri('./model/'), faceapi.nets.faceExpressionNet.loadFromUri('./model/')]);
  timings.models_ready_ms = performance.now();
  timings.backend = tf.getBackend();
  timings.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  timings.threads = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) ? 'multi' : 1;
  timings.versions = { faceapi: faceapi.version, tfjs: tf.version_core };
  return detector === 'tiny' ? new faceapi.TinyFaceDetectorOptions() : new faceapi.SsdMobilenetv1Options();
})();
ready.catch((err) => {
  window.ferError = `face-api.js did not load: ${err.message || err}`;
  $('message').textContent = window.ferError;
});

async function analyse(file) {
  const t0 = performance.now();
  try {
    const options = await ready;
    const t1 = performance.now();
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.src = url;
    await img.decode();
    const t2 = performance.now();
    const found = await faceapi.detectAllFaces(img, options).withFaceExpressions();
    const t3 = performance.now();
    URL.revokeObjectURL(url);
    const faces = found.map((f) => ({ box: [f.detection.box.x, f.detection.box.y, f.detection.box.width,
      f.detection.box.height].map(Math.round), score: f.detection.score, expressions: { ...f.expressions } }));
    window.ferResult = { faces };
    window.ferError = null;
    timings.first_result_ms ??= performance.now();
    timings.last = { wait_ms: t1 - t0, decode_ms: t2 - t1, detect_expressions_ms: t3 - t2, total_ms: t3 - t1,
                     faces: faces.length, width: img.naturalWidth, height: img.naturalHeight };
    $('json').textContent = JSON.stringify(window.ferResult, null, 2);
    $('message').textContent = `${faces.length} face(s) found.`;
  } catch (err) {
    window.ferResult = null;
    window.ferError = `${file.name} could not be analysed: ${err.message || err}`;
    $('message').textContent = window.ferError;
  }
  timings.runs += 1;
}

$('file').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) analyse(f); e.target.value = ''; });
