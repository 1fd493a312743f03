// YuNet, the face detector, in WebAssembly (kernels.wasm: pixels.c + yunet.c). One call takes the photo's pixels to
// YuNet's twelve outputs: OpenCV's INTER_AREA shrink straight into the network's input tensor (bit-exact, as
// fer_hf.faces does it), then the network layer by layer as yunet.json lists it (written from the ONNX file by
// scripts/build_static_space.py; weights in yunet.bin). Everything stays in the module's memory; the call is
// synchronous, so webcam frames and photos cannot overlap in it.

export class YuNet {
  // wasm: kernels.wasm, as bytes or compiled (WebAssembly.Module, which vit.js instantiates too); program: yunet.json;
  // weights: yunet.bin's bytes (ArrayBuffer or a typed array)
  static async load({ wasm, program, weights }) {
    const made = await WebAssembly.instantiate(wasm), instance = made.instance ?? made;
    const raw = new Uint8Array(weights.buffer ?? weights, weights.byteOffset ?? 0, weights.byteLength);
    return new YuNet(instance.exports, program, new Float32Array(raw.slice().buffer));
  }

  constructor(k, program, weights) {
    Object.assign(this, { k, program });
    this.weightsAt = (k.__heap_base.value + 15) & ~15;
    this.arenaAt = (this.weightsAt + weights.byteLength + 15) & ~15;  // every plan's tensors start here
    this.grow(this.arenaAt);
    new Float32Array(k.memory.buffer, this.weightsAt, weights.length).set(weights);
    this.plans = new Map();
  }

  grow(end) {
    const mem = this.k.memory;
    if (end > mem.buffer.byteLength) mem.grow(Math.ceil((end - mem.buffer.byteLength) / 65536));
  }

  // Shapes ([c, h, w]) and addresses of every tensor for an h x w input; a tensor's memory is reused once its last
  // reader has run (a 1920x1440 photo's detection needs ~0.2 GB otherwise).
  plan(h, w) {
    const key = `${h}x${w}`;
    if (this.plans.has(key)) return this.plans.get(key);
    const { steps, outputs, input } = this.program, shapes = { [input]: [3, h, w] };
    for (const s of steps) {
      const [c, y, x] = shapes[s.in ?? s.big];
      shapes[s.out] = s.op === 'conv3x3s2_relu' ? [s.cout, y / 2, x / 2] : s.op === 'maxpool2' ? [c, y / 2, x / 2]
        : s.op === 'conv1x1' ? [s.cout, y, x] : [c, y, x];
    }
    const lastRead = {};
    steps.forEach((s, i) => { for (const t of [s.in, s.small, s.big]) if (t) lastRead[t] = i; });
    for (const o of Object.values(outputs)) lastRead[o.from] = steps.length;
    let end = this.arenaAt;
    const free = [], bytes = (t) => 4 * shapes[t].reduce((a, b) => a * b);
    const alloc = (n) => {
      const i = free.findIndex((f) => f.bytes >= n && f.bytes <= 2 * n);
      if (i >= 0) return free.splice(i, 1)[0];
      const block = { at: end, bytes: n };
      end = (end + n + 15) & ~15;
      return block;
    };
    const tmp = alloc(4 * 27 * (w / 2)), blocks = { [input]: alloc(bytes(input)) };  // tmp: the first layer's im2col rows
    steps.forEach((s, i) => {
      blocks[s.out] = alloc(bytes(s.out));
      for (const t of [s.in, s.small, s.big]) if (t && lastRead[t] === i) free.push(blocks[t]);
    });
    const plan = { h, w, shapes, at: Object.fromEntries(Object.entries(blocks).map(([t, b]) => [t, b.at])), tmp: tmp.at, end };
    this.plans.set(key, plan);
    return plan;
  }

  // Writes YuNet's input for an RGB or RGBA (ch 3 or 4) w x h image shrunk to dw x dh (dw x dh = w x h: as it is)
  // into the plan's input tensor: B, G, R float planes zero-padded at the right and bottom to multiples of 32.
  input(src, w, h, ch, dw, dh) {
    const padW = Math.floor((dw - 1) / 32 + 1) * 32, padH = Math.floor((dh - 1) / 32 + 1) * 32;
    const k = this.k, plan = this.plan(padH, padW);
    const srcAt = plan.end, scratchAt = (srcAt + w * h * ch + 4 + 15) & ~15;  // +4: the shrink reads 4 bytes a pixel
    this.grow(scratchAt + k.scratch_bytes(w, h, dw, dh));
    new Uint8Array(k.memory.buffer, srcAt, w * h * ch).set(src);
    k.yunet_planes(srcAt, w, h, ch, dw, dh, plan.at[this.program.input], padW, padH, scratchAt);
    return plan;
  }

  // The network on the input `input` wrote: {cls_8, ..., kps_32} as the ONNX model gives them ([anchors, channels]
  // flattened, sigmoid applied to cls and obj).
  run(plan) {
    const k = this.k, p = plan, W = this.weightsAt;
    for (const s of this.program.steps) {
      const [c, y, x] = p.shapes[s.in ?? s.big], w = W + 4 * s.w, b = W + 4 * s.b;
      if (s.op === 'conv1x1') k.conv1x1(p.at[s.in], s.cin, y * x, w, b, s.cout, p.at[s.out]);
      else if (s.op === 'dw3x3') k.dw3x3(p.at[s.in], c, y, x, w, b, p.at[s.out], s.relu ? 1 : 0);
      else if (s.op === 'conv3x3s2_relu') k.conv3x3s2_relu(p.at[s.in], c, y, x, w, b, s.cout, p.at[s.out], p.tmp);
      else if (s.op === 'maxpool2') k.maxpool2(p.at[s.in], c, y, x, p.at[s.out]);
      else if (s.op === 'upsample2_add') k.upsample2_add(p.at[s.small], p.at[s.big], c, y, x, p.at[s.out]);
      else throw new Error(`yunet.json: unknown step ${s.op}`);
    }
    const out = {};
    for (const [name, o] of Object.entries(this.program.outputs)) {  // NCHW -> [h * w, c], as the ONNX model's Transpose
      const [c, y, x] = p.shapes[o.from], n = y * x;
      const src = new Float32Array(k.memory.buffer, p.at[o.from], c * n), dst = new Float32Array(c * n);
      for (let ch = 0; ch < c; ch++) for (let i = 0; i < n; i++) dst[i * c + ch] = src[ch * n + i];
      if (o.sigmoid) for (let i = 0; i < dst.length; i++) dst[i] = 1 / (1 + Math.exp(-dst[i]));
      out[name] = dst;
    }
    return out;
  }
}
