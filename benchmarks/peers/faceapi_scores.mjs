/**
 * face-api.js expression scores for pre-cropped face images: one JSON of the 7 probabilities per image.
 *
 *   node benchmarks/peers/faceapi_scores.mjs --modules ~/.cache/fer_hf/peers/npm --output scores.json \
 *       (--list paths.txt | FOLDER | IMAGE...)
 *
 * `--modules` is the folder holding the node_modules that `npm ci` installed from benchmarks/peers/package-lock.json
 * (compare.py does that, in its cache). Images are PNG or JPEG, one face each, already cropped: there is no detection
 * step. Each face goes to `faceExpressionNet.predictExpressions` as an RGB int32 tensor (H x W x 3), which is what
 * face-api's own pipeline hands that net for a detected face under Node (`extractFaceTensors` slices the box out of
 * the image tensor). So the preprocessing is face-api's own code, not a copy of it: zero-pad to a centred square,
 * bilinear resize to 112 x 112, subtract the RGB mean (122.782, 117.001, 104.298), divide by 255.
 *
 * Output: {"labels": face-api's label names in its order, "versions": {...}, "backend": ..., "images": [{"path",
 * "probabilities": {label: p}}]}; the caller maps the labels to its own classes by name.
 */

import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join, resolve } from 'node:path';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

function parseArgs(argv) {
  const args = { modules: null, output: null, list: null, backend: 'wasm', inputs: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (['--modules', '--output', '--list', '--backend'].includes(arg)) {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      args[arg.slice(2)] = argv[i + 1];
      i += 1;
    } else if (arg.startsWith('--')) {
      throw new Error(`unknown option ${arg}`);
    } else {
      args.inputs.push(arg);
    }
  }
  if (!args.modules || !args.output) throw new Error('--modules and --output are required');
  return args;
}

function imagePaths(args) {
  const paths = [];
  if (args.list) {
    paths.push(...readFileSync(args.list, 'utf8').split('\n').map((line) => line.trim()).filter(Boolean));
  }
  for (const input of args.inputs) {
    if (statSync(input).isDirectory()) {
      // sorted, so that two runs over one folder list the images in the same order
      const names = readdirSync(input).filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort();
      paths.push(...names.map((n) => join(input, n)));
    } else {
      paths.push(input);
    }
  }
  if (!paths.length) throw new Error('no images given (--list, a folder or image paths)');
  return paths;
}

// Decoded to RGB bytes in JS (pngjs, jpeg-js): no native canvas, no tfjs-node binary to download.
function decodeRgb(path, PNG, jpeg) {
  const buffer = readFileSync(path);
  const ext = extname(path).toLowerCase();
  let width;
  let height;
  let rgba;
  if (ext === '.png') {
    ({ width, height, data: rgba } = PNG.sync.read(buffer)); // always 8-bit RGBA, whatever the PNG's colour type
  } else if (ext === '.jpg' || ext === '.jpeg') {
    ({ width, height, data: rgba } = jpeg.decode(buffer, { useTArray: true, formatAsRGBA: true }));
  } else {
    throw new Error(`${path}: only PNG and JPEG are read`);
  }
  const rgb = new Int32Array(width * height * 3);
  for (let p = 0; p < width * height; p += 1) {
    rgb[3 * p] = rgba[4 * p];
    rgb[3 * p + 1] = rgba[4 * p + 1];
    rgb[3 * p + 2] = rgba[4 * p + 2];
  }
  return { width, height, rgb };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  // The peers live in the cache, not next to this script: resolve every package from there.
  const modules = resolve(args.modules);
  const require = createRequire(join(modules, 'package.json'));
  const tf = require('@tensorflow/tfjs');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  // face-api's build for Node without the native tfjs-node binding: @tensorflow/tfjs + the wasm backend
  const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  const { PNG } = require('pngjs');
  const jpeg = require('jpeg-js');

  if (args.backend === 'wasm') {
    // one thread: the machine is shared; the plain SIMD binary needs no worker threads
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasm.setThreadsCount(1);
  }
  if (!(await tf.setBackend(args.backend))) throw new Error(`tfjs backend ${args.backend} did not start`);
  await tf.ready();

  const modelDir = join(modules, 'node_modules', '@vladmandic', 'face-api', 'model');
  await faceapi.nets.faceExpressionNet.loadFromDisk(modelDir);
  const labels = [...faceapi.FACE_EXPRESSION_LABELS];

  const images = [];
  for (const path of imagePaths(args)) {
    const { width, height, rgb } = decodeRgb(path, PNG, jpeg);
    const tensor = tf.tensor3d(rgb, [height, width, 3], 'int32');
    const expressions = await faceapi.nets.faceExpressionNet.predictExpressions(tensor);
    tensor.dispose();
    images.push({ path, probabilities: Object.fromEntries(labels.map((name) => [name, expressions[name]])) });
  }
  const pkg = (name) => JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
  const versions = {
    '@vladmandic/face-api': pkg('@vladmandic/face-api'),
    '@tensorflow/tfjs': pkg('@tensorflow/tfjs'),
    '@tensorflow/tfjs-backend-wasm': pkg('@tensorflow/tfjs-backend-wasm'),
    node: process.versions.node,
  };
  writeFileSync(args.output, JSON.stringify({ labels, versions, backend: tf.getBackend(), images }));
  process.stderr.write(`face-api ${versions['@vladmandic/face-api']} (${tf.getBackend()}): ${images.length} images\n`);
}

main().catch((err) => {
  process.stderr.write(`faceapi_scores: ${err.stack || err}\n`);
  process.exit(1);
});
