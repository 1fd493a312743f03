// The int8 ViT's transformer blocks, final norm and head in WebAssembly (vit.c in kernels.wasm), from vit.json:
// the blocks' layout as scripts/build_static_space.py read it from the ONNX graph, and where each weight lies in
// model.onnx (byte offsets), so the weights are not shipped twice. onnxruntime-web runs the stem (stem.onnx: the
// patch embedding, class token and position embedding); fer.js hands its tokens to run().

const SIZES = { int8: 1, float32: 4 };

export class ViT {
  // module: kernels.wasm compiled (WebAssembly.Module); program: vit.json; model: model.onnx's bytes
  static async load(module, program, model) {
    const instance = await WebAssembly.instantiate(module);
    return new ViT(instance.exports, program, new Uint8Array(model));
  }

  constructor(k, program, model) {
    Object.assign(this, { k, program });
    this.end = (k.__heap_base.value + 15) & ~15;
    const { dim } = program;
    const tensor = (ref) => {
      const bytes = SIZES[ref.dtype] * ref.shape.reduce((a, b) => a * b, 1);
      if (ref.at < 0 || ref.at + bytes > model.length) throw new Error(`vit.json: a weight lies outside model.onnx (${ref.at})`);
      return model.subarray(ref.at, ref.at + bytes);
    };
    const put = (bytes, size = bytes.length) => {  // copies bytes to fresh memory (zero-padded to size); its address
      const at = this.alloc(size);
      new Uint8Array(k.memory.buffer, at, bytes.length).set(bytes);
      return at;
    };
    const norm = (n) => ({ weight: put(tensor(n.weight)), bias: put(tensor(n.bias)), epsilon: n.epsilon });
    const linear = (l) => {
      const [kIn, n] = l.weight.shape, np = (n + 7) & ~7, kp = (kIn + 1) & ~1;
      const raw = put(tensor(l.weight));
      const packed = this.alloc(2 * kp * np);
      k.vit_pack(raw, kIn, n, packed);
      const scale = tensor(l.scale);
      return { w: packed, k: kIn, kp, n, np, scale: put(scale), perChannel: scale.length > 4 ? 1 : 0,
               bias: put(tensor(l.bias), 4 * np) };
    };
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
    this.buffers = { key, x: f(m * d), y: f(m * d), qkv: f(m * 3 * d), att: f(m * d), mlp: f(m * h),
                     a: this.alloc(2 * m * Math.max(h, d) + 16), mul: f(Math.max(h, 3 * d, this.head.np)),
                     tmp: f((t + 2 * ((t + 3) & ~3)) * hd + ((t + 3) & ~3)), cls: f(batch * d), logits: f(batch * this.head.np) };
    return this.buffers;
  }

  // y (rows x l.np) = x (rows x l.k) through the quantised linear layer l; mode 0 store, 1 add, 2 GELU.
  linear(x, rows, l, y, mode) {
    const k = this.k, buf = this.buffers;
    const scale = k.vit_quantize(x, rows, l.k, l.kp, buf.a);
    k.vit_scales(scale, l.scale, l.n, l.np, l.perChannel, buf.mul);
    k.vit_linear(buf.a, rows, l.kp, l.w, l.np, buf.mul, l.bias, y, mode);
  }

  // tokens: the stem's output, batch x t x dim floats. Returns the logits, batch x classes.
  run(tokens, batch) {
    const { dim: d, heads, qk_scale: qkScale, classes } = this.program, t = tokens.length / (batch * d), k = this.k;
    if (!Number.isInteger(t)) throw new Error(`expected ${batch} x T x ${d} tokens, got ${tokens.length} values`);
    const b = this.buffersFor(batch, t), m = batch * t;
    new Float32Array(k.memory.buffer, b.x, m * d).set(tokens);
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
