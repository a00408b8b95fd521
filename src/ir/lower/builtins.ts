/**
 * The recipe's tensor built-ins (`softmax(x, axis: -1)`, `split(x, 3)`, …) in
 * terms of IR ops. Argument names and defaults come from the checker's
 * BUILTINS table, so both read a call the same way.
 */
import { SEED_STRIDE } from '../seeds.js';
import { makeTensor } from '../tensor.js';
import type { Value } from '../graph.js';
import type { LV, TensorBuiltinHost } from './types.js';
import { asBool, asInt, asIntList, asNumber, LoweringError } from './values.js';

type Impl = (lw: TensorBuiltinHost, args: ReadonlyMap<string, LV>) => LV;

const tensor = (v: Value): LV => ({ k: 'tensor', v });

function get(args: ReadonlyMap<string, LV>, name: string): LV {
  const v = args.get(name);
  if (!v) throw new LoweringError(`missing argument ${name}`);
  return v;
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Elementwise op on a tensor; folded at compile time on a number (`sqrt(64)`). */
function unary(op: keyof TensorBuiltinHost['b'] & string, fold: (x: number) => number): Impl {
  return (lw, args) => {
    const x = get(args, 'x');
    if (x.k === 'int' || x.k === 'float') return { k: 'float', n: fold(x.n) };
    return tensor((lw.b[op] as (v: Value) => Value)(lw.asTensor(x)));
  };
}

function binary(op: 'maximum' | 'minimum'): Impl {
  return (lw, args) => {
    const x = get(args, 'x');
    const y = get(args, 'y');
    const dtype = x.k === 'tensor' ? x.v.dtype : y.k === 'tensor' ? y.v.dtype : 'f32';
    return tensor(lw.b[op](lw.asTensor(x, dtype), lw.asTensor(y, dtype)));
  };
}

function reduction(kind: 'sum' | 'mean' | 'max'): Impl {
  return (lw, args) => {
    const x = lw.asTensor(get(args, 'x'));
    const axisArg = args.get('axis');
    const keep = asBool(args.get('keepdim') ?? { k: 'bool', b: false }, 'keepdim');
    const axes = !axisArg || axisArg.k === 'none' ? x.shape.map((_, i) => i) : asIntList(axisArg, 'axis').map((a) => normAxis(a, x.shape.length));
    if (axes.length === 0) return tensor(x);
    const b = lw.b;
    if (kind === 'mean' && lw.batchMeans) {
      const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
      return tensor(b.div(b.reduceSum(x, axes, keep), lw.batchMeans.divisor(b.scalar(count))));
    }
    const f = kind === 'sum' ? b.reduceSum : kind === 'mean' ? b.reduceMean : b.reduceMax;
    return tensor(f(x, axes, keep));
  };
}

const IMPLS: Record<string, Impl> = {
  exp: unary('exp', Math.exp),
  log: unary('log', Math.log),
  sqrt: unary('sqrt', Math.sqrt),
  rsqrt: (lw, args) => {
    const x = get(args, 'x');
    if (x.k === 'int' || x.k === 'float') return { k: 'float', n: 1 / Math.sqrt(x.n) };
    return tensor(lw.b.reciprocal(lw.b.sqrt(lw.asTensor(x))));
  },
  tanh: unary('tanh', Math.tanh),
  sigmoid: unary('sigmoid', (x) => 1 / (1 + Math.exp(-x))),
  log_sigmoid: unary('logSigmoid', (x) => -Math.log1p(Math.exp(-x))),
  softplus: unary('softplus', (x) => Math.log1p(Math.exp(x))),
  relu: unary('relu', (x) => Math.max(0, x)),
  gelu: unary('gelu', (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))),
  silu: unary('silu', (x) => x / (1 + Math.exp(-x))),
  abs: unary('abs', Math.abs),
  maximum: binary('maximum'),
  minimum: binary('minimum'),
  softmax: (lw, args) => {
    const x = lw.asTensor(get(args, 'x'));
    return tensor(lw.b.softmax(x, normAxis(asInt(get(args, 'axis'), 'axis'), x.shape.length)));
  },
  log_softmax: (lw, args) => {
    const x = lw.asTensor(get(args, 'x'));
    return tensor(lw.b.logSoftmax(x, normAxis(asInt(get(args, 'axis'), 'axis'), x.shape.length)));
  },
  sum: reduction('sum'),
  mean: reduction('mean'),
  max: reduction('max'),
  where: (lw, args) => {
    const x = get(args, 'x');
    const y = get(args, 'y');
    const dtype = x.k === 'tensor' ? x.v.dtype : y.k === 'tensor' ? y.v.dtype : 'f32';
    return tensor(lw.b.where(lw.asTensor(get(args, 'cond')), lw.asTensor(x, dtype), lw.asTensor(y, dtype)));
  },
  reshape: (lw, args) => tensor(lw.b.reshape(lw.asTensor(get(args, 'x')), asIntList(get(args, 'shape'), 'shape'))),
  transpose: (lw, args) => tensor(lw.b.transpose(lw.asTensor(get(args, 'x')), asIntList(get(args, 'perm'), 'perm'))),
  concat: (lw, args) => {
    const xs = get(args, 'xs');
    if (xs.k !== 'list' && xs.k !== 'tuple') throw new LoweringError('concat: expected a list');
    const values = xs.items.map((x) => lw.asTensor(x));
    return tensor(lw.b.concat(values, normAxis(asInt(get(args, 'axis'), 'axis'), values[0]!.shape.length)));
  },
  split: (lw, args) => {
    const x = lw.asTensor(get(args, 'x'));
    const parts = asInt(get(args, 'parts'), 'parts');
    const axis = normAxis(asInt(get(args, 'axis'), 'axis'), x.shape.length);
    const size = x.shape[axis]! / parts;
    const items: LV[] = Array.from({ length: parts }, (_, i) => tensor(lw.b.slice(x, [i * size], [(i + 1) * size], [axis])));
    return { k: 'tuple', items };
  },
  expand: (lw, args) => tensor(lw.b.expand(lw.asTensor(get(args, 'x')), asIntList(get(args, 'shape'), 'shape'))),
  gather: (lw, args) => tensor(lw.b.gather(lw.asTensor(get(args, 'table')), lw.asTensor(get(args, 'ids'), 'i64'))),
  take_along: (lw, args) => tensor(lw.b.takeAlong(lw.asTensor(get(args, 'x')), lw.asTensor(get(args, 'ids'), 'i64'))),
  causal_mask: (lw, args) => {
    const n = asInt(get(args, 'size'), 'size');
    const values = new Array<number>(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) values[i * n + j] = j <= i ? 1 : 0;
    return tensor(lw.b.constant(makeTensor('bool', [n, n], values)));
  },
  layer_norm: (lw, args) =>
    tensor(lw.b.layerNorm(lw.asTensor(get(args, 'x')), lw.asTensor(get(args, 'weight')), lw.asTensor(get(args, 'bias')), asNumber(get(args, 'eps'), 'eps'))),
  rms_norm: (lw, args) => tensor(lw.b.rmsNorm(lw.asTensor(get(args, 'x')), lw.asTensor(get(args, 'weight')), asNumber(get(args, 'eps'), 'eps'))),
  rope: (lw, args) => tensor(lw.b.rope(lw.asTensor(get(args, 'x')), asNumber(get(args, 'base'), 'base'))),
  dropout: (lw, args) => {
    const x = lw.asTensor(get(args, 'x'));
    const p = asNumber(get(args, 'p'), 'p');
    // Evaluation and inference graphs have no seed: dropout is the identity there.
    if (!lw.seed || p === 0) return tensor(x);
    const site = lw.b.add(lw.seed, lw.b.scalar(SEED_STRIDE * ++lw.dropoutSites, 'i64'));
    return tensor(lw.b.dropout(x, site, p));
  },
  cast: (lw, args) => {
    const d = get(args, 'dtype');
    if (d.k !== 'dtype') throw new LoweringError('cast: expected a dtype');
    return tensor(lw.b.cast(lw.asTensor(get(args, 'x')), d.dtype));
  },
  cross_entropy: (lw, args) => {
    const b = lw.b;
    const targets = lw.asTensor(get(args, 'targets'), 'i64');
    const ignore = asInt(get(args, 'ignore_index'), 'ignore_index');
    const loss = b.crossEntropy(lw.asTensor(get(args, 'logits')), targets, ignore);
    if (!lw.batchMeans) return tensor(loss);
    // The op averages over the targets it does not ignore: undo that, then divide by the full batch's count.
    const kept = b.reduceSum(b.cast(b.not(b.equal(targets, b.scalar(ignore, 'i64'))), 'f32'), targets.shape.map((_, i) => i));
    return tensor(b.div(b.mul(loss, kept), b.maximum(lw.batchMeans.divisor(kept), b.scalar(1))));
  },
  masked_mean: (lw, args) => {
    const b = lw.b;
    const x = lw.asTensor(get(args, 'x'));
    const m = b.cast(lw.asTensor(get(args, 'mask')), 'f32');
    const all = (v: Value): number[] => v.shape.map((_, i) => i);
    const weighted = b.mul(x, m);
    const count = b.reduceSum(b.expand(m, weighted.shape), all(weighted));
    const divisor = lw.batchMeans ? lw.batchMeans.divisor(count) : count;
    // max(count, 1): a batch with nothing selected contributes 0, not NaN.
    return tensor(b.div(b.reduceSum(weighted, all(weighted)), b.maximum(divisor, b.scalar(1))));
  },
};

export function isTensorBuiltin(name: string): boolean {
  return name in IMPLS;
}

export function callTensorBuiltin(lw: TensorBuiltinHost, name: string, args: ReadonlyMap<string, LV>): LV {
  return IMPLS[name]!(lw, args);
}
