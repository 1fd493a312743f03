// The int8 ViT in WebAssembly (vit.c in kernels.wasm), from vit.json: the blocks' layout as
// scripts/build_static_space.py read it from the ONNX graph, and where each weight lies in model.onnx (byte
// offsets), so the weights are not shipped twice; the stem (patch embedding, and the hybrid R+ViT's ResNet stem)
// as steps with their weights in stem.bin: classify() takes the faces' pixels to logits. For a stem the kernels
// do not cover, onnxruntime-web runs stem.onnx and fer.js hands its tokens to run().

const SIZES = { int8: 1, int16: 2, float32: 4 };

export class ViT {
  // module: kernels.wasm compiled (WebAssembly.Module); program: vit.json; model: model.onnx's bytes; stem:
  // stem.bin's bytes (null when the program's stem is stem.onnx)
  static async load(module, program, model, stem = null) {
    const instance = await WebAssembly.instantiate(module);
    return new ViT(instance.exports, program, new Uint8Array(model), stem && new Uint8Array(stem));
  }

  constructor(k, program, model, stem) {
    Object.assign(this, { k, program });
    this.end = (k.__heap_base.value + 15) & ~15;
    const { dim } = program;
    const tensor = (ref) => {  // the bytes of a weight: in model.onnx (at) or stem.bin (bin)
      const bytes = SIZES[ref.dtype] * ref.shape.reduce((a, b) => a * b, 1);
      const [file, at, name] = ref.bin === undefined ? [model, ref.at, 'model.onnx'] : [stem, ref.bin, 'stem.bin'];
      if (!file || at < 0 || at + bytes > file.length) throw new Error(`vit.json: a weight lies outside ${name} (${at})`);
      return file.subarray(at, at + bytes);
    };
    const put = (bytes, size = bytes.length) => {  // copies bytes to fresh memory (zero-padded to size); its address
      const at = this.alloc(size);
      new Uint8Array(k.memory.buffer, at, size).fill(0).set(bytes);
      return at;
    };
    const norm = (n) => ({ weight: put(tensor(n.weight)), bias: put(tensor(n.bias)), epsilon: n.epsilon });
    const packed = (weight, pack) => {  // the int8 (or int16) [k][n] weights packed for vit_linear; their address
      const [kIn, n] = weight.shape, np = (n + 7) & ~7, kp = (kIn + 1) & ~1, at = this.alloc(2 * kp * np);
      const raw = put(tensor(weight));
      pack(raw, kIn, n, at);
      this.end = raw;  // the raw copy was the last allocation: freed
      return { w: at, kIn, kp, n, np };
    };
    const count = (ref) => ref.shape.reduce((a, b) => a * b, 1);
    const linear = (l) => {
      const p = packed(l.weight, k.vit_pack);
      return { ...p, scale: put(tensor(l.scale)), perChannel: count(l.scale) > 1 ? 1 : 0, bias: put(tensor(l.bias), 4 * p.np) };
    };
    const stemSteps = program.stem.steps ?? null;  // else stem.onnx, in onnxruntime-web
    this.stem = stemSteps && stemSteps.map((st) => {
      if (st.op !== 'conv') return { ...st, gamma: st.gamma && put(tensor(st.gamma)), beta: st.beta && put(tensor(st.beta)) };
      const p = packed(st.weight, k.vit_pack16);
      return { ...st, ...p, scale: put(tensor(st.scale)), perChannel: count(st.scale) > 1 ? 1 : 0,
               bias: put(tensor(st.bias), 4 * p.np) };
    });
    if (this.stem) {
      this.cls = put(tensor(program.stem.cls));
      this.pos = put(tensor(program.stem.pos));
    }
    this.blocks = program.blocks.map((b) => ({ norm1: norm(b.norm1), qkv: linear(b.qkv), proj: linear(b.proj),
                                                norm2: norm(b.norm2), fc1: linear(b.fc1), fc2: linear(b.fc2) }));
    this.norm = norm(program.norm);
    this.head = linear(program.head);
    this.hidden = this.blocks.length ? this.blocks[0].fc1.np : dim;
    this.weightsEnd = this.end;
    this.buffers = null;
    if (this.head.n !== program.classes) throw new Error(`vit.json: the head has ${this.head.n} outputs, not ${program.classes}`);
  }

  alloc(bytes) {
    const at = this.end;
    this.end = (at + bytes + 15) & ~15;
    const mem = this.k.memory;
    if (this.end > mem.buffer.byteLength) mem.grow(Math.ceil((this.end - mem.buffer.byteLength) / 65536));
    return at;
  }

  // Activation buffers for m = batch * t rows, reused while the shape stays.
  buffersFor(batch, t) {
    const key = `${batch}x${t}`;
    if (this.buffers?.key === key) return this.buffers;
    this.end = this.weightsEnd;
    const m = batch * t, d = this.program.dim, h = this.hidden, hd = d / this.program.heads;
    const f = (n) => this.alloc(4 * n);
    // the stem's largest map (floats), its largest im2col matrix (int16), its largest quantised input (int16)
    const maps = [3 * (this.program.stem.image_size ?? 0) ** 2], ints = [m * Math.max(h, d)];
    for (const st of this.stem ?? []) {
      if (st.op === 'conv') ints.push(((batch * st.cin * st.in[0] * st.in[1] + 7) & ~7) + batch * st.out[0] * st.out[1] * st.kp);
      maps.push(st.out ? st.out[0] * st.out[1] * (st.np ?? st.c) : 0);
    }
    const map = batch * Math.max(...maps);
    this.buffers = { key, x: f(m * d), y: f(m * d), qkv: f(m * 3 * d), att: f(m * d), mlp: f(m * h),
                     a: this.alloc(2 * Math.max(...ints) + 16),
                     mapA: f(map), mapB: f(map), mul: f(Math.max(h, 3 * d, this.head.np, ...(this.stem ?? []).map((st) => st.np ?? 0))),
                     tmp: f((t + 2 * ((t + 3) & ~3)) * hd + ((t + 3) & ~3)), cls: f(batch * d), logits: f(batch * this.head.np) };
    return this.buffers;
  }

  // y (rows x l.np) = x (rows x l.kIn) through the quantised linear layer l; mode 0 store, 1 add, 2 GELU.
  linear(x, rows, l, y, mode) {
    const k = this.k, buf = this.buffers;
    const scale = k.vit_quantize(x, rows, l.kIn, l.kp, buf.a);
    k.vit_scales(scale, l.scale, l.n, l.np, l.perChannel, buf.mul);
    k.vit_linear(buf.a, rows, l.kp, l.w, l.np, buf.mul, l.bias, y, mode);
  }

  // pixels: the faces, batch x 3 x size x size floats (normalised, as the model's input). Returns the logits.
  classify(pixels, batch) {
    const k = this.k, { stem } = this.program, t = stem.patches + 1, b = this.buffersFor(batch, t);
    new Float32Array(k.memory.buffer, b.mapA, pixels.length).set(pixels);
    let src = b.mapA, dst = b.mapB, [c, h, w] = [3, stem.image_size, stem.image_size], nhwc = 0;
    for (const st of this.stem) {
      if (st.op === 'conv') {  // quantise the whole input, im2col, the product; out: NHWC rows of np channels
        const scale = k.vit_quantize(src, 1, batch * c * h * w, batch * c * h * w, b.a);
        const cols = b.a + 2 * ((batch * c * h * w + 7) & ~7), rows = batch * st.out[0] * st.out[1];
        k.vit_im2col(b.a, batch, c, h, w, nhwc, st.k, st.s, st.pad[0], st.pad[1], st.out[0], st.out[1], cols, st.kp);
        k.vit_scales(scale, st.scale, st.n, st.np, st.perChannel, b.mul);
        k.vit_linear(cols, rows, st.kp, st.w, st.np, b.mul, st.bias, dst, 0);
        [c, h, w, nhwc] = [st.np, st.out[0], st.out[1], 1];
      } else if (st.op === 'groupnorm_relu') {
        k.vit_groupnorm_relu(src, batch, h * w, c, st.groups, st.eps, st.gamma, st.beta);
        continue;  // in place
      } else {
        k.vit_maxpool(src, batch, h, w, c, st.k, st.s, st.pad[0], st.pad[1], st.out[0], st.out[1], dst);
        [h, w] = st.out;
      }
      [src, dst] = [dst, src];
    }
    if (c !== this.program.dim) throw new Error(`vit.json: the stem ends with ${c} channels, not ${this.program.dim}`);
    k.vit_tokens(src, this.cls, this.pos, batch, stem.patches, c, b.x);
    return this.blocksAndHead(batch, t);
  }

  // tokens: the stem's output (stem.onnx in onnxruntime-web), batch x t x dim floats. Returns the logits.
  run(tokens, batch) {
    const d = this.program.dim, t = tokens.length / (batch * d), k = this.k;
    if (!Number.isInteger(t)) throw new Error(`expected ${batch} x T x ${d} tokens, got ${tokens.length} values`);
    const at = this.buffersFor(batch, t).x;  // first: it may grow the memory, detaching the old buffer
    new Float32Array(k.memory.buffer, at, batch * t * d).set(tokens);
    return this.blocksAndHead(batch, t);
  }

  // the blocks on the tokens in buffers.x, the final norm and the head
  blocksAndHead(batch, t) {
    const { dim: d, heads, qk_scale: qkScale, classes } = this.program, k = this.k, b = this.buffers, m = batch * t;
    for (const blk of this.blocks) {
      k.vit_layernorm(b.x, m, d, d, blk.norm1.weight, blk.norm1.bias, blk.norm1.epsilon, b.y);
      this.linear(b.y, m, blk.qkv, b.qkv, 0);
      k.vit_attention(b.qkv, batch, t, heads, d / heads, qkScale, b.att, b.tmp);
      this.linear(b.att, m, blk.proj, b.x, 1);
      k.vit_layernorm(b.x, m, d, d, blk.norm2.weight, blk.norm2.bias, blk.norm2.epsilon, b.y);
      this.linear(b.y, m, blk.fc1, b.mlp, 2);
      this.linear(b.mlp, m, blk.fc2, b.x, 1);
    }
    // the final norm on the class tokens only (the head reads token 0 of each face)
    k.vit_layernorm(b.x, batch, d, t * d, this.norm.weight, this.norm.bias, this.norm.epsilon, b.cls);
    this.linear(b.cls, batch, this.head, b.logits, 0);
    const all = new Float32Array(k.memory.buffer, b.logits, batch * this.head.np), out = new Float32Array(batch * classes);
    for (let i = 0; i < batch; i++) out.set(all.subarray(i * this.head.np, i * this.head.np + classes), i * classes);
    return out;
  }
}
