/**
 * Linear algebra and reductions: batched matmul and reduce_sum / reduce_mean /
 * reduce_max over a list of axes.
 */
import type { OpBuilder } from '../opBuilder.js';
import type { Attrs, Node, Value, ValueType } from '../graph.js';
import type { OpDef } from '../op.js';
import { broadcastIndex, broadcastShapes, formatShapeList as fmt, sizeOf, type DType } from '../tensor.js';
import { boolAttr, describe, expectArity, expectDtype, intsAttr, normalizeAxes, opError, tensorOf } from './common.js';

// ------------------------------------------------------------------ matmul

/** The permutation swapping the last two axes of a rank-r tensor. */
function swapLast(rank: number): number[] {
  const perm = [...Array(rank).keys()];
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

interface MatmulPlan {
  readonly batch: number[];
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

function planMatmul(a: readonly number[], b: readonly number[]): MatmulPlan {
  if (a.length < 2 || b.length < 2) throw opError('matmul', `operands must have rank ≥ 2: ${fmt(a)} @ ${fmt(b)}`);
  const [m, k] = a.slice(-2) as [number, number];
  const [k2, n] = b.slice(-2) as [number, number];
  if (k !== k2) throw opError('matmul', `inner dimensions differ: ${fmt(a)} @ ${fmt(b)}`);
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  if (!batch) throw opError('matmul', `batch dimensions do not broadcast: ${fmt(a)} @ ${fmt(b)}`);
  return { batch, m, k, n };
}

const MATMUL: OpDef = {
  name: 'matmul',
  doc: 'a [..., m, k] @ b [..., k, n] → [..., m, n], batch dimensions broadcast',
  infer(inputs) {
    expectArity('matmul', inputs, 2);
    const [a, b] = inputs as [ValueType, ValueType];
    if (a.dtype !== 'f32' || b.dtype !== 'f32') throw opError('matmul', `operands must be f32, got ${describe(a)} @ ${describe(b)}`);
    const { batch, m, n } = planMatmul(a.shape, b.shape);
    return [{ dtype: 'f32', shape: [...batch, m, n] }];
  },
  evaluate([a, b]) {
    const { batch, m, k, n } = planMatmul(a!.shape, b!.shape);
    const ia = broadcastIndex(a!.shape.slice(0, -2), batch);
    const ib = broadcastIndex(b!.shape.slice(0, -2), batch);
    const nb = sizeOf(batch);
    const out = new Float64Array(nb * m * n);
    const A = a!.data;
    const B = b!.data;
    for (let t = 0; t < nb; t++) {
      const ao = ia[t]! * m * k;
      const bo = ib[t]! * k * n;
      const oo = t * m * n;
      for (let i = 0; i < m; i++) {
        for (let p = 0; p < k; p++) {
          const av = A[ao + i * k + p]!;
          const brow = bo + p * n;
          const orow = oo + i * n;
          for (let j = 0; j < n; j++) out[orow + j]! += av * B[brow + j]!;
        }
      }
    }
    return [tensorOf('f32', [...batch, m, n], out)];
  },
  lower(ctx, node) {
    ctx.emit('MatMul', [ctx.input(node, 0), ctx.input(node, 1)], [ctx.output(node, 0)]);
  },
  grad(b, node, [g]) {
    if (!g) return [null, null];
    const [x, y] = node.inputs as [Value, Value];
    return [
      b.sumToShape(b.matmul(g, b.transpose(y, swapLast(y.shape.length))), x.shape),
      b.sumToShape(b.matmul(b.transpose(x, swapLast(x.shape.length)), g), y.shape),
    ];
  },
};

// ------------------------------------------------------------------ reductions

interface ReducePlan {
  /** Reduced axes, non-negative and sorted. */
  readonly axes: number[];
  readonly keepdims: boolean;
  /** The input shape with 1 on every reduced axis. */
  readonly kept: number[];
  readonly out: number[];
  /** How many elements each output element reduces over. */
  readonly count: number;
}

function planReduce(op: string, x: ValueType, attrs: Attrs): ReducePlan {
  const raw = intsAttr(op, attrs, 'axes');
  const keepdims = boolAttr(op, attrs, 'keepdims');
  if (raw.length === 0) throw opError(op, `axes must not be empty (input ${fmt(x.shape)})`);
  const axes = normalizeAxes(op, raw, x.shape).sort((p, q) => p - q);
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = keepdims ? kept : x.shape.filter((_, i) => !axes.includes(i));
  const count = axes.reduce((acc, a) => acc * x.shape[a]!, 1);
  return { axes, keepdims, kept, out, count };
}

function reduction(
  name: string,
  doc: string,
  dtypes: readonly DType[],
  init: number,
  step: (acc: number, v: number) => number,
  finish: (acc: number, count: number) => number,
  lower: OpDef['lower'],
  gradRule: (b: OpBuilder, node: Node, plan: ReducePlan, gKept: Value) => Value,
): OpDef {
  return {
    name,
    doc,
    infer(inputs, attrs) {
      expectArity(name, inputs, 1);
      expectDtype(name, inputs[0]!, dtypes);
      return [{ dtype: inputs[0]!.dtype, shape: planReduce(name, inputs[0]!, attrs).out }];
    },
    evaluate([x], attrs) {
      const plan = planReduce(name, x!, attrs);
      const map = broadcastIndex(plan.kept, x!.shape);
      const out = new Float64Array(sizeOf(plan.kept)).fill(init);
      for (let i = 0; i < map.length; i++) out[map[i]!] = step(out[map[i]!]!, x!.data[i]!);
      for (let i = 0; i < out.length; i++) out[i] = finish(out[i]!, plan.count);
      return [tensorOf(x!.dtype, plan.out, out)];
    },
    lower,
    grad(b, node, [g]) {
      const x = node.inputs[0]!;
      if (!g || x.dtype !== 'f32') return [null];
      const plan = planReduce(name, x, node.attrs);
      return [gradRule(b, node, plan, b.reshape(g, plan.kept))];
    },
  };
}

function axesOf(node: Node): { axes: number[]; keepdims: number } {
  const plan = planReduce(node.op, node.inputs[0]!, node.attrs);
  return { axes: plan.axes, keepdims: plan.keepdims ? 1 : 0 };
}

const REDUCE_OPS: OpDef[] = [
  reduction(
    'reduce_sum',
    'sum over axes (keepdims keeps them as size 1)',
    ['f32', 'i64'],
    0,
    (acc, v) => acc + v,
    (acc) => acc,
    (ctx, node) => {
      // Opset 13+: ReduceSum takes its axes as an int64 input.
      const { axes, keepdims } = axesOf(node);
      ctx.emit('ReduceSum', [ctx.input(node, 0), ctx.constInt64(axes)], [ctx.output(node, 0)], { keepdims: { i: keepdims } });
    },
    (b, node, _plan, gk) => b.expand(gk, node.inputs[0]!.shape),
  ),
  reduction(
    'reduce_mean',
    'mean over axes (keepdims keeps them as size 1)',
    ['f32'],
    0,
    (acc, v) => acc + v,
    (acc, count) => acc / count,
    (ctx, node) => {
      // Opset 17: ReduceMean still takes axes as an attribute (an input only from opset 18).
      const { axes, keepdims } = axesOf(node);
      ctx.emit('ReduceMean', [ctx.input(node, 0)], [ctx.output(node, 0)], { axes: { ints: axes }, keepdims: { i: keepdims } });
    },
    (b, node, plan, gk) => b.mul(b.expand(gk, node.inputs[0]!.shape), b.scalar(1 / plan.count)),
  ),
  reduction(
    'reduce_max',
    'max over axes (keepdims keeps them as size 1); the gradient is split equally among tied maxima',
    ['f32', 'i64'],
    -Infinity,
    (acc, v) => (v > acc || Number.isNaN(v) ? v : acc),
    (acc) => acc,
    (ctx, node) => {
      const { axes, keepdims } = axesOf(node);
      ctx.emit('ReduceMax', [ctx.input(node, 0)], [ctx.output(node, 0)], { axes: { ints: axes }, keepdims: { i: keepdims } });
    },
    (b, node, plan, gk) => {
      const x = node.inputs[0]!;
      const hit = b.cast(b.equal(x, b.reshape(node.outputs[0]!, plan.kept)), 'f32');
      const ties = b.reduceSum(hit, plan.axes, true);
      return b.mul(hit, b.div(gk, ties));
    },
  ),
];

export const LINALG_OPS: readonly OpDef[] = [MATMUL, ...REDUCE_OPS];
