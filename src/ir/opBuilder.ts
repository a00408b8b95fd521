/**
 * The vocabulary of IR construction: one named helper per op (`b.mul(x, y)`,
 * `b.reduceSum(x, [1])`), each a thin wrapper that spells out the op's inputs
 * and attributes, over one abstract `emit`. `GraphBuilder` implements `emit`
 * with the op table's type rules; gradient rules (`OpDef.grad`) are written
 * against this class, so the op table does not depend on the builder that
 * looks it up (no import cycle between them).
 */
import { IrError, type Attrs, type Value } from './graph.js';
import { makeTensor, sameShape, type DType, type Tensor } from './tensor.js';

export abstract class OpBuilder {
  /** Adds a node computing `op` on `inputs`; returns its outputs, typed by the op's type rule. */
  abstract emit(op: string, inputs: readonly Value[], attrs?: Attrs): Value[];

  /** Adds a node with one output and returns it. */
  one(op: string, inputs: readonly Value[], attrs: Attrs = {}): Value {
    const out = this.emit(op, inputs, attrs);
    if (out.length !== 1) throw new IrError(`${op} has ${out.length} outputs, expected one`);
    return out[0]!;
  }

  // ------------------------------------------------------------ constants

  constant(value: Tensor): Value {
    return this.one('constant', [], { value });
  }

  scalar(value: number, dtype: DType = 'f32'): Value {
    return this.constant(makeTensor(dtype, [], [value]));
  }

  // ------------------------------------------------------------ elementwise

  neg = (x: Value): Value => this.one('neg', [x]);
  exp = (x: Value): Value => this.one('exp', [x]);
  log = (x: Value): Value => this.one('log', [x]);
  sqrt = (x: Value): Value => this.one('sqrt', [x]);
  reciprocal = (x: Value): Value => this.one('reciprocal', [x]);
  tanh = (x: Value): Value => this.one('tanh', [x]);
  sigmoid = (x: Value): Value => this.one('sigmoid', [x]);
  relu = (x: Value): Value => this.one('relu', [x]);
  gelu = (x: Value): Value => this.one('gelu', [x]);
  silu = (x: Value): Value => this.one('silu', [x]);
  abs = (x: Value): Value => this.one('abs', [x]);
  softplus = (x: Value): Value => this.one('softplus', [x]);
  logSigmoid = (x: Value): Value => this.one('log_sigmoid', [x]);
  cos = (x: Value): Value => this.one('cos', [x]);
  sin = (x: Value): Value => this.one('sin', [x]);

  add = (a: Value, b: Value): Value => this.one('add', [a, b]);
  sub = (a: Value, b: Value): Value => this.one('sub', [a, b]);
  mul = (a: Value, b: Value): Value => this.one('mul', [a, b]);
  div = (a: Value, b: Value): Value => this.one('div', [a, b]);
  pow = (a: Value, b: Value): Value => this.one('pow', [a, b]);
  maximum = (a: Value, b: Value): Value => this.one('maximum', [a, b]);
  minimum = (a: Value, b: Value): Value => this.one('minimum', [a, b]);

  less = (a: Value, b: Value): Value => this.one('less', [a, b]);
  greater = (a: Value, b: Value): Value => this.one('greater', [a, b]);
  equal = (a: Value, b: Value): Value => this.one('equal', [a, b]);
  not = (a: Value): Value => this.one('not', [a]);
  and = (a: Value, b: Value): Value => this.one('and', [a, b]);
  or = (a: Value, b: Value): Value => this.one('or', [a, b]);

  where = (cond: Value, a: Value, b: Value): Value => this.one('where', [cond, a, b]);
  cast = (x: Value, to: DType): Value => (x.dtype === to ? x : this.one('cast', [x], { to }));

  // ------------------------------------------------------------ linear algebra, reductions

  matmul = (a: Value, b: Value): Value => this.one('matmul', [a, b]);

  reduceSum = (x: Value, axes: readonly number[], keepdims = false): Value => this.one('reduce_sum', [x], { axes, keepdims });
  reduceMean = (x: Value, axes: readonly number[], keepdims = false): Value => this.one('reduce_mean', [x], { axes, keepdims });
  reduceMax = (x: Value, axes: readonly number[], keepdims = false): Value => this.one('reduce_max', [x], { axes, keepdims });

  softmax = (x: Value, axis: number): Value => this.one('softmax', [x], { axis });
  logSoftmax = (x: Value, axis: number): Value => this.one('log_softmax', [x], { axis });
  layerNorm = (x: Value, w: Value, b: Value, eps: number): Value => this.one('layer_norm', [x, w, b], { eps });
  rmsNorm = (x: Value, w: Value, eps: number): Value => this.one('rms_norm', [x, w], { eps });

  // ------------------------------------------------------------ shape

  reshape = (x: Value, shape: readonly number[]): Value => (sameShape(x.shape, shape) ? x : this.one('reshape', [x], { shape }));
  transpose = (x: Value, perm: readonly number[]): Value => (perm.every((p, i) => p === i) ? x : this.one('transpose', [x], { perm }));
  slice = (x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[], steps?: readonly number[]): Value =>
    this.one('slice', [x], { starts, ends, axes, steps: steps ?? starts.map(() => 1) });
  concat = (xs: readonly Value[], axis: number): Value => (xs.length === 1 ? xs[0]! : this.one('concat', xs, { axis }));
  expand = (x: Value, shape: readonly number[]): Value => (sameShape(x.shape, shape) ? x : this.one('expand', [x], { shape }));
  /** Zero padding: `pads` is [begin_0, …, begin_n-1, end_0, …, end_n-1] as in ONNX Pad. */
  pad = (x: Value, pads: readonly number[]): Value => (pads.every((p) => p === 0) ? x : this.one('pad', [x], { pads }));

  // ------------------------------------------------------------ indexing and losses

  gather = (table: Value, ids: Value): Value => this.one('gather', [table, ids]);
  scatterAddRows = (ids: Value, updates: Value, rows: number): Value => this.one('scatter_add_rows', [ids, updates], { rows });
  takeAlong = (x: Value, idx: Value): Value => this.one('take_along', [x, idx]);
  oneHot = (idx: Value, depth: number): Value => this.one('one_hot', [idx], { depth });
  crossEntropy = (logits: Value, targets: Value, ignoreIndex = -100): Value => this.one('cross_entropy', [logits, targets], { ignore_index: ignoreIndex });
  /** Rotary embedding over the last two axes [..., T, D]; `inverse` rotates by the negative angles (its gradient). */
  rope = (x: Value, base: number, inverse = false): Value => this.one('rope', [x], { base, inverse });
  dropout = (x: Value, seed: Value, p: number): Value => this.one('dropout', [x, seed], { p });

  // ------------------------------------------------------------ helpers for gradient rules

  /** Sums a broadcast gradient back down to `shape` (the inverse of broadcasting to g's shape). */
  sumToShape(g: Value, shape: readonly number[]): Value {
    if (sameShape(g.shape, shape)) return g;
    const lead = g.shape.length - shape.length;
    const axes: number[] = [];
    for (let i = 0; i < g.shape.length; i++) {
      if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
    }
    const summed = axes.length ? this.reduceSum(g, axes, true) : g;
    return this.reshape(summed, shape);
  }

  /** A constant filled with one value, broadcast to a shape. */
  full(shape: readonly number[], value: number, dtype: DType = 'f32'): Value {
    return this.expand(this.reshape(this.scalar(value, dtype), shape.map(() => 1)), shape);
  }
}
