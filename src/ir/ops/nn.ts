/**
 * Neural-network ops: softmax and log-softmax along one axis, layer and RMS
 * normalisation over the last axis, rotary position embedding, dropout with a
 * counter-based hash mask, and the token cross-entropy loss. Each is one IR
 * op (so the ONNX lowering can use the fused ONNX operator where there is
 * one) with a gradient built from primitive ops.
 */
import { IrError, type AttrValue, type Attrs, type Value, type ValueType } from '../graph.js';
import type { OpDef } from '../op.js';
import { expectArity } from './common.js';
import { formatShapeList as fmt, makeTensor, sameShape, sizeOf, type Tensor } from '../tensor.js';

// ------------------------------------------------------------ shared checks


function requireDtype(op: string, what: string, v: ValueType, dtype: ValueType['dtype']): void {
  if (v.dtype !== dtype) throw new IrError(`${op}: ${what} must be ${dtype}, not ${v.dtype}${fmt(v.shape)}`);
}

function attrOf(op: string, attrs: Attrs, key: string): AttrValue {
  const v = attrs[key];
  if (v === undefined) throw new IrError(`${op}: missing attribute ${key}`);
  return v;
}

function numberAttr(op: string, attrs: Attrs, key: string): number {
  const v = attrOf(op, attrs, key);
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new IrError(`${op}: attribute ${key} must be a finite number`);
  return v;
}

function intAttr(op: string, attrs: Attrs, key: string): number {
  const v = numberAttr(op, attrs, key);
  if (!Number.isSafeInteger(v)) throw new IrError(`${op}: attribute ${key} must be an integer, not ${v}`);
  return v;
}

/** The axis attribute, made non-negative; throws unless it names an axis of a rank-`rank` tensor. */
function axisAttr(op: string, attrs: Attrs, shape: readonly number[]): number {
  const axis = intAttr(op, attrs, 'axis');
  const rank = shape.length;
  if (axis < -rank || axis >= rank) throw new IrError(`${op}: axis ${axis} is out of range for ${fmt(shape)}`);
  return axis < 0 ? axis + rank : axis;
}

/** Outer count, axis length and inner count of `shape` around `axis`: element (o, k, i) is at (o·len + k)·inner + i. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis]!, sizeOf(shape.slice(axis + 1))];
}

function last(shape: readonly number[]): number {
  return shape[shape.length - 1]!;
}

// ------------------------------------------------------------ softmax

function inferAlongAxis(op: string, inputs: readonly ValueType[], attrs: Attrs): ValueType[] {
  expectArity(op, inputs, 1);
  const x = inputs[0]!;
  requireDtype(op, 'x', x, 'f32');
  if (x.shape.length === 0) throw new IrError(`${op}: x must have at least one axis, not a scalar`);
  axisAttr(op, attrs, x.shape);
  return [{ dtype: 'f32', shape: x.shape }];
}

/** Max-subtracted softmax (log: false) or log-softmax (log: true) along `axis`, in float64. */
function softmaxRef(x: Tensor, axis: number, log: boolean): Tensor {
  const [outer, len, inner] = around(x.shape, axis);
  const out = makeTensor('f32', x.shape);
  const xd = x.data;
  const od = out.data;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number): number => (o * len + k) * inner + i;
      let max = -Infinity;
      for (let k = 0; k < len; k++) max = Math.max(max, xd[at(k)]!);
      let sum = 0;
      for (let k = 0; k < len; k++) sum += Math.exp(xd[at(k)]! - max);
      const logSum = Math.log(sum);
      for (let k = 0; k < len; k++) {
        const shifted = xd[at(k)]! - max;
        od[at(k)] = log ? shifted - logSum : Math.exp(shifted) / sum;
      }
    }
  }
  return out;
}

const softmax: OpDef = {
  name: 'softmax',
  doc: 'softmax(x) {axis}: exp(x) / Σ exp(x) along one axis (ONNX Softmax, opset 13 semantics).',
  infer: (inputs, attrs) => inferAlongAxis('softmax', inputs, attrs),
  evaluate: ([x], attrs) => [softmaxRef(x!, axisAttr('softmax', attrs, x!.shape), false)],
  lower(ctx, node) {
    const axis = axisAttr('softmax', node.attrs, node.inputs[0]!.shape);
    ctx.emit('Softmax', [ctx.input(node, 0)], [ctx.output(node, 0)], { axis: { i: axis } });
  },
  grad(b, node, [g]) {
    // dx = y · (g − Σ_axis g·y)
    const y = node.outputs[0]!;
    const axis = axisAttr('softmax', node.attrs, y.shape);
    const dot = b.reduceSum(b.mul(g!, y), [axis], true);
    return [b.mul(y, b.sub(g!, dot))];
  },
};

const logSoftmax: OpDef = {
  name: 'log_softmax',
  doc: 'log_softmax(x) {axis}: x − log Σ exp(x) along one axis (ONNX LogSoftmax, opset 13 semantics).',
  infer: (inputs, attrs) => inferAlongAxis('log_softmax', inputs, attrs),
  evaluate: ([x], attrs) => [softmaxRef(x!, axisAttr('log_softmax', attrs, x!.shape), true)],
  lower(ctx, node) {
    const axis = axisAttr('log_softmax', node.attrs, node.inputs[0]!.shape);
    ctx.emit('LogSoftmax', [ctx.input(node, 0)], [ctx.output(node, 0)], { axis: { i: axis } });
  },
  grad(b, node, [g]) {
    // dx = g − softmax(x) · Σ_axis g, with softmax(x) = exp(y)
    const y = node.outputs[0]!;
    const axis = axisAttr('log_softmax', node.attrs, y.shape);
    return [b.sub(g!, b.mul(b.exp(y), b.reduceSum(g!, [axis], true)))];
  },
};

// ------------------------------------------------------------ normalisation

function epsAttr(op: string, attrs: Attrs): number {
  const eps = numberAttr(op, attrs, 'eps');
  if (eps < 0) throw new IrError(`${op}: eps must be non-negative, not ${eps}`);
  return eps;
}

/** Checks x (f32, rank ≥ 1) and per-feature parameters of shape [last axis of x]. */
function inferNorm(op: string, inputs: readonly ValueType[], attrs: Attrs, params: readonly string[]): ValueType[] {
  expectArity(op, inputs, 1 + params.length);
  const x = inputs[0]!;
  requireDtype(op, 'x', x, 'f32');
  if (x.shape.length === 0) throw new IrError(`${op}: x must have at least one axis, not a scalar`);
  params.forEach((what, i) => {
    const p = inputs[i + 1]!;
    requireDtype(op, what, p, 'f32');
    if (p.shape.length !== 1 || p.shape[0] !== last(x.shape)) throw new IrError(`${op}: ${what} ${fmt(p.shape)} must match the last axis of x ${fmt(x.shape)}`);
  });
  epsAttr(op, attrs);
  return [{ dtype: 'f32', shape: x.shape }];
}

/** Both normalisations' reference: per row of the last axis, y = (x − centre) / sqrt(mean((x − centre)²) + eps) · w (+ b). */
function normRef(x: Tensor, w: Tensor, bias: Tensor | null, eps: number, centre: boolean): Tensor {
  const d = last(x.shape);
  const out = makeTensor('f32', x.shape);
  for (let r = 0; r < x.data.length / d; r++) {
    const row = x.data.subarray(r * d, (r + 1) * d);
    let mean = 0;
    if (centre) {
      for (const v of row) mean += v;
      mean /= d;
    }
    let ms = 0;
    for (const v of row) ms += (v - mean) * (v - mean);
    const rstd = 1 / Math.sqrt(ms / d + eps);
    for (let j = 0; j < d; j++) out.data[r * d + j] = (row[j]! - mean) * rstd * w.data[j]! + (bias ? bias.data[j]! : 0);
  }
  return out;
}

const layerNorm: OpDef = {
  name: 'layer_norm',
  doc: 'layer_norm(x, w, b) {eps}: (x − mean) / sqrt(var + eps) · w + b over the last axis (ONNX LayerNormalization).',
  infer: (inputs, attrs) => inferNorm('layer_norm', inputs, attrs, ['weight', 'bias']),
  evaluate: ([x, w, bias], attrs) => [normRef(x!, w!, bias!, epsAttr('layer_norm', attrs), true)],
  lower(ctx, node) {
    ctx.emit('LayerNormalization', [ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)], [ctx.output(node, 0)], {
      axis: { i: -1 },
      epsilon: { f: epsAttr('layer_norm', node.attrs) },
    });
  },
  grad(b, node, [g]) {
    // With x̂ = (x − μ)·r, r = 1/sqrt(var + eps) and ĝ = g·w:
    // dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂)), dw = Σ g·x̂, db = Σ g (over the leading axes).
    const [x, w] = node.inputs as [Value, Value, Value];
    const a = x.shape.length - 1;
    const xc = b.sub(x, b.reduceMean(x, [a], true));
    const r = b.reciprocal(b.sqrt(b.add(b.reduceMean(b.mul(xc, xc), [a], true), b.scalar(epsAttr('layer_norm', node.attrs)))));
    const xhat = b.mul(xc, r);
    const gh = b.mul(g!, w);
    const inner = b.sub(b.sub(gh, b.reduceMean(gh, [a], true)), b.mul(xhat, b.reduceMean(b.mul(gh, xhat), [a], true)));
    return [b.mul(r, inner), b.sumToShape(b.mul(g!, xhat), w.shape), b.sumToShape(g!, w.shape)];
  },
};

const rmsNorm: OpDef = {
  name: 'rms_norm',
  doc: 'rms_norm(x, w) {eps}: x / sqrt(mean(x²) + eps) · w over the last axis (composed: opset 17 has no RMSNormalization).',
  infer: (inputs, attrs) => inferNorm('rms_norm', inputs, attrs, ['weight']),
  evaluate: ([x, w], attrs) => [normRef(x!, w!, null, epsAttr('rms_norm', attrs), false)],
  lower(ctx, node) {
    const x = ctx.input(node, 0);
    const [sq] = ctx.emit('Mul', [x, x], 1);
    const [ms] = ctx.emit('ReduceMean', [sq!], 1, { axes: { ints: [-1] }, keepdims: { i: 1 } });
    const [shifted] = ctx.emit('Add', [ms!, ctx.constFloat([epsAttr('rms_norm', node.attrs)], [])], 1);
    const [rms] = ctx.emit('Sqrt', [shifted!], 1);
    const [normed] = ctx.emit('Div', [x, rms!], 1);
    ctx.emit('Mul', [normed!, ctx.input(node, 1)], [ctx.output(node, 0)]);
  },
  grad(b, node, [g]) {
    // With x̂ = x·r, r = 1/sqrt(mean(x²) + eps) and ĝ = g·w: dx = r · (ĝ − x̂ · mean(ĝ·x̂)), dw = Σ g·x̂.
    const [x, w] = node.inputs as [Value, Value];
    const a = x.shape.length - 1;
    const r = b.reciprocal(b.sqrt(b.add(b.reduceMean(b.mul(x, x), [a], true), b.scalar(epsAttr('rms_norm', node.attrs)))));
    const xhat = b.mul(x, r);
    const gh = b.mul(g!, w);
    const dx = b.mul(r, b.sub(gh, b.mul(xhat, b.reduceMean(b.mul(gh, xhat), [a], true))));
    return [dx, b.sumToShape(b.mul(g!, xhat), w.shape)];
  },
};

// ------------------------------------------------------------ rotary position embedding

function ropeAttrs(attrs: Attrs): { base: number; inverse: boolean } {
  const base = numberAttr('rope', attrs, 'base');
  if (base <= 0) throw new IrError(`rope: base must be positive, not ${base}`);
  const inverse = attrs['inverse'] ?? false;
  if (typeof inverse !== 'boolean') throw new IrError('rope: attribute inverse must be a boolean');
  return { base, inverse };
}

/**
 * The [T, D] cos and sin tables: entry (t, j) is the cos / sin of t·θ_i with
 * i = j mod D/2 and θ_i = base^(−2i/D) (each angle duplicated over both
 * halves, rotate-half convention); `inverse` negates the angles.
 */
export function ropeTables(t: number, d: number, base: number, inverse: boolean): { cos: Float64Array; sin: Float64Array } {
  const half = d / 2;
  const cos = new Float64Array(t * d);
  const sin = new Float64Array(t * d);
  for (let pos = 0; pos < t; pos++) {
    for (let j = 0; j < d; j++) {
      const i = j % half;
      const angle = pos * base ** ((-2 * i) / d) * (inverse ? -1 : 1);
      cos[pos * d + j] = Math.cos(angle);
      sin[pos * d + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

const rope: OpDef = {
  name: 'rope',
  doc: 'rope(x) {base, inverse}: rotary position embedding over [..., T, D], rotate-half convention; inverse rotates back.',
  infer(inputs, attrs) {
    expectArity('rope', inputs, 1);
    const x = inputs[0]!;
    requireDtype('rope', 'x', x, 'f32');
    if (x.shape.length < 2) throw new IrError(`rope: x ${fmt(x.shape)} must have at least two axes [..., T, D]`);
    const d = last(x.shape);
    if (d === 0 || d % 2 !== 0) throw new IrError(`rope: the last axis of x ${fmt(x.shape)} must be even and non-zero`);
    ropeAttrs(attrs);
    return [{ dtype: 'f32', shape: x.shape }];
  },
  evaluate([x], attrs) {
    const { base, inverse } = ropeAttrs(attrs);
    const d = last(x!.shape);
    const t = x!.shape[x!.shape.length - 2]!;
    const half = d / 2;
    const { cos, sin } = ropeTables(t, d, base, inverse);
    const out = makeTensor('f32', x!.shape);
    const xd = x!.data;
    for (let k = 0; k < xd.length; k++) {
      const j = k % d;
      const at = k % (t * d);
      const rotated = j < half ? -xd[k + half]! : xd[k - half]!;
      out.data[k] = xd[k]! * cos[at]! + rotated * sin[at]!;
    }
    return [out];
  },
  lower(ctx, node) {
    const { base, inverse } = ropeAttrs(node.attrs);
    const shape = node.inputs[0]!.shape;
    const d = last(shape);
    const t = shape[shape.length - 2]!;
    const { cos, sin } = ropeTables(t, d, base, inverse);
    const x = ctx.input(node, 0);
    const axis = ctx.constInt64([-1]);
    const [x1] = ctx.emit('Slice', [x, ctx.constInt64([0]), ctx.constInt64([d / 2]), axis], 1);
    const [x2] = ctx.emit('Slice', [x, ctx.constInt64([d / 2]), ctx.constInt64([d]), axis], 1);
    const [negX2] = ctx.emit('Neg', [x2!], 1);
    const [rotated] = ctx.emit('Concat', [negX2!, x1!], 1, { axis: { i: -1 } });
    const [a] = ctx.emit('Mul', [x, ctx.constFloat(Array.from(cos), [t, d])], 1);
    const [bb] = ctx.emit('Mul', [rotated!, ctx.constFloat(Array.from(sin), [t, d])], 1);
    ctx.emit('Add', [a!, bb!], [ctx.output(node, 0)]);
  },
  grad(b, node, [g]) {
    // Each (x_i, x_{i+D/2}) pair is rotated by an orthogonal 2×2 matrix; its transpose rotates back.
    const { base, inverse } = ropeAttrs(node.attrs);
    return [b.rope(g!, base, !inverse)];
  },
};

// ------------------------------------------------------------ dropout

/**
 * The dropout mask hash: counter-based, over the integers mod the Mersenne
 * prime P = 2^31 − 1. Every intermediate value of the ONNX lowering's int64
 * arithmetic stays below 2^62 + 2^31, so it never overflows, and the
 * reference reproduces it exactly with BigInt. The two squaring rounds make
 * it nonlinear in the element index (neighbouring elements are uncorrelated).
 * The mask depends only on (seed, salt, flat index): two dropout sites fed the
 * same seed with the same shape drop the same elements unless their salts differ.
 */
const HASH = {
  P: 2147483647,
  /** Index multiplier. */
  A: 1597334677,
  /** Seed multiplier. */
  B: 1013904223,
  /** Seed offset; the salt attribute moves it. */
  C: 374761393,
  SALT: 668265263,
  K1: 1540483477,
  M2: 1274126177,
  K2: 1500450271,
  K3: 2053299061,
} as const;

function dropoutAttrs(attrs: Attrs): { p: number; salt: number } {
  const p = numberAttr('dropout', attrs, 'p');
  if (!(p >= 0 && p < 1)) throw new IrError(`dropout: p must be in [0, 1), not ${p}`);
  const salt = attrs['salt'] === undefined ? 0 : intAttr('dropout', attrs, 'salt');
  return { p, salt };
}

/** The integer threshold: element k is dropped when hash(seed, k) < threshold, i.e. hash / P < p. */
function dropThreshold(p: number): number {
  return Math.ceil(p * HASH.P);
}

/** The seed term's offset (C + salt·SALT) mod P, in [0, P). */
function seedOffset(salt: number): number {
  const P = BigInt(HASH.P);
  return Number((((BigInt(HASH.C) + BigInt(salt) * BigInt(HASH.SALT)) % P) + P) % P);
}

/** The hash's seed term (s·B + offset) mod P, with s = seed mod P made non-negative (as ONNX Mod with fmod 0). */
function seedTerm(seed: bigint, salt: number): bigint {
  const P = BigInt(HASH.P);
  const s = ((seed % P) + P) % P;
  return (s * BigInt(HASH.B) + BigInt(seedOffset(salt))) % P;
}

/** hash(seed, k) in [0, P) for flat indices k in [0, n), exactly as the ONNX lowering computes it. */
export function dropoutHash(seed: number, salt: number, n: number): Float64Array {
  const P = BigInt(HASH.P);
  const v = seedTerm(BigInt(seed), salt);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let h = (((BigInt(k) % P) * BigInt(HASH.A)) % P + v) % P;
    h = (h * h + BigInt(HASH.K1)) % P;
    h = (h * BigInt(HASH.M2) + BigInt(HASH.K2)) % P;
    h = (h * h + BigInt(HASH.K3)) % P;
    out[k] = Number(h);
  }
  return out;
}

const dropout: OpDef = {
  name: 'dropout',
  doc: 'dropout(x, seed) {p, salt?}: x · mask / (1 − p), mask from a hash of (seed, salt, flat index); the same seed gives the same mask.',
  infer(inputs, attrs) {
    expectArity('dropout', inputs, 2);
    const [x, seed] = inputs as [ValueType, ValueType];
    requireDtype('dropout', 'x', x, 'f32');
    if (seed.dtype !== 'i64' || seed.shape.length !== 0) throw new IrError(`dropout: seed must be an i64 scalar, not ${seed.dtype}${fmt(seed.shape)}`);
    if (sizeOf(x.shape) >= HASH.P) throw new IrError(`dropout: x ${fmt(x.shape)} has 2^31 − 1 elements or more, beyond the mask hash's counter`);
    dropoutAttrs(attrs);
    return [{ dtype: 'f32', shape: x.shape }];
  },
  evaluate([x, seed], attrs) {
    const { p, salt } = dropoutAttrs(attrs);
    const out = makeTensor('f32', x!.shape, x!.data);
    if (p === 0) return [out];
    const hash = dropoutHash(seed!.data[0]!, salt, out.data.length);
    const threshold = dropThreshold(p);
    for (let k = 0; k < out.data.length; k++) out.data[k] = hash[k]! < threshold ? 0 : out.data[k]! / (1 - p);
    return [out];
  },
  lower(ctx, node) {
    const { p, salt } = dropoutAttrs(node.attrs);
    const x = ctx.input(node, 0);
    if (p === 0) {
      ctx.emit('Identity', [x], [ctx.output(node, 0)]);
      return;
    }
    const shape = node.inputs[0]!.shape;
    const n = sizeOf(shape);
    const int = (v: number): string => ctx.constInt64([v], []);
    const P = int(HASH.P);
    const mod = (a: string): string => ctx.emit('Mod', [a, P], 1, { fmod: { i: 0 } })[0]!;
    const bin = (op: 'Add' | 'Mul', a: string, b: string): string => ctx.emit(op, [a, b], 1)[0]!;
    // The seed term, a scalar: (seed mod P)·B + offset, mod P.
    const v = mod(bin('Add', bin('Mul', mod(ctx.input(node, 1)), int(HASH.B)), int(seedOffset(salt))));
    // The flat index of every element (below P for any tensor that fits in memory).
    const [range] = ctx.emit('Range', [int(0), int(n), int(1)], 1);
    const [index] = ctx.emit('Reshape', [range!, ctx.constInt64(shape)], 1);
    let h = mod(bin('Add', mod(bin('Mul', index!, int(HASH.A))), v));
    h = mod(bin('Add', bin('Mul', h, h), int(HASH.K1)));
    h = mod(bin('Add', bin('Mul', h, int(HASH.M2)), int(HASH.K2)));
    h = mod(bin('Add', bin('Mul', h, h), int(HASH.K3)));
    const [drop] = ctx.emit('Less', [h, int(dropThreshold(p))], 1);
    const [scaled] = ctx.emit('Div', [x, ctx.constFloat([1 - p], [])], 1);
    ctx.emit('Where', [drop!, ctx.constFloat([0], []), scaled!], [ctx.output(node, 0)]);
  },
  grad(b, node, [g]) {
    // The same mask and scale: dropout is linear in x for a fixed seed.
    return [b.one('dropout', [g!, node.inputs[1]!], node.attrs), null];
  },
};

// ------------------------------------------------------------ cross-entropy

function ignoreIndexAttr(attrs: Attrs): number {
  return intAttr('cross_entropy', attrs, 'ignore_index');
}

const crossEntropy: OpDef = {
  name: 'cross_entropy',
  doc:
    'cross_entropy(logits [..., V], targets i64 [...]) {ignore_index}: mean over non-ignored positions of −log_softmax(logits)[target]; ' +
    'NaN (0/0) when every target is ignored, as ONNX SoftmaxCrossEntropyLoss.',
  infer(inputs, attrs) {
    expectArity('cross_entropy', inputs, 2);
    const [logits, targets] = inputs as [ValueType, ValueType];
    requireDtype('cross_entropy', 'logits', logits, 'f32');
    requireDtype('cross_entropy', 'targets', targets, 'i64');
    if (logits.shape.length === 0) throw new IrError('cross_entropy: logits must have a class axis, not be a scalar');
    if (last(logits.shape) === 0) throw new IrError(`cross_entropy: logits ${fmt(logits.shape)} have no classes`);
    if (!sameShape(targets.shape, logits.shape.slice(0, -1))) {
      throw new IrError(`cross_entropy: targets ${fmt(targets.shape)} must match the leading axes of logits ${fmt(logits.shape)}`);
    }
    ignoreIndexAttr(attrs);
    return [{ dtype: 'f32', shape: [] }];
  },
  evaluate([logits, targets], attrs) {
    const ignore = ignoreIndexAttr(attrs);
    const v = last(logits!.shape);
    let total = 0;
    let count = 0;
    targets!.data.forEach((target, n) => {
      if (target === ignore) return;
      if (!(target >= 0 && target < v)) throw new IrError(`cross_entropy: target ${target} at position ${n} is outside [0, ${v}) and not the ignore_index ${ignore}`);
      const row = logits!.data.subarray(n * v, (n + 1) * v);
      let max = -Infinity;
      for (const x of row) max = Math.max(max, x);
      let sum = 0;
      for (const x of row) sum += Math.exp(x - max);
      total += max + Math.log(sum) - row[target]!;
      count++;
    });
    // 0 / 0 = NaN when every target is ignored, as onnxruntime's SoftmaxCrossEntropyLoss gives.
    return [makeTensor('f32', [], [total / count])];
  },
  lower(ctx, node) {
    const [logits, targets] = node.inputs as [Value, Value];
    const v = last(logits.shape);
    const n = sizeOf(targets.shape);
    const [scores] = ctx.emit('Reshape', [ctx.input(node, 0), ctx.constInt64([n, v])], 1);
    const [labels] = ctx.emit('Reshape', [ctx.input(node, 1), ctx.constInt64([n])], 1);
    ctx.emit('SoftmaxCrossEntropyLoss', [scores!, labels!], [ctx.output(node, 0)], {
      reduction: { s: 'mean' },
      ignore_index: { i: ignoreIndexAttr(node.attrs) },
    });
  },
  grad(b, node, [g]) {
    // d logits = (softmax(logits) − one_hot(target)) · valid / count · g; NaN everywhere when count = 0, like the loss.
    const [logits, targets] = node.inputs as [Value, Value];
    const a = logits.shape.length - 1;
    const validBool = b.not(b.equal(targets, b.scalar(ignoreIndexAttr(node.attrs), 'i64')));
    const valid = b.cast(validBool, 'f32');
    const count = targets.shape.length === 0 ? valid : b.reduceSum(valid, targets.shape.map((_, i) => i));
    const safeTargets = b.where(validBool, targets, b.scalar(0, 'i64'));
    const diff = b.sub(b.softmax(logits, a), b.oneHot(safeTargets, last(logits.shape)));
    const weight = b.mul(b.reshape(valid, [...targets.shape, 1]), b.div(g!, count));
    return [b.mul(diff, weight), null];
  },
};

export const NN_OPS: readonly OpDef[] = [softmax, logSoftmax, layerNorm, rmsNorm, rope, dropout, crossEntropy];
