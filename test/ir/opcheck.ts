/**
 * The per-op check used by every op's test: the ONNX lowering run by
 * onnxruntime-node must match the float64 reference evaluator, the analytic
 * gradient (autodiff, reference evaluator) must match central finite
 * differences, and the gradient graph run by onnxruntime-node must match the
 * reference gradient.
 */
import { expect } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { IrError, type Attrs, type Value, type ValueType } from '../../src/ir/graph.js';
import { lookupOp } from '../../src/ir/ops/index.js';
import { buildGradientGraph, gradcheck, type GradcheckResult } from '../../src/ir/gradcheck.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import { makeTensor, type DType, type Tensor } from '../../src/ir/tensor.js';
import { runOnce } from '../../src/runtime/ort.js';
import { Prng } from '../../src/runtime/prng.js';
import { emitModel } from '../../targets/onnx/emit.js';

export type Fill =
  | 'normal'
  /** Uniform in [0.5, 2): for log, sqrt, pow bases. */
  | 'positive'
  /** Integers in [0, n). */
  | { readonly ints: number }
  | 'bool'
  /** Exactly these values. */
  | readonly number[];

export interface InputSpec {
  readonly shape: readonly number[];
  readonly dtype?: DType;
  readonly fill?: Fill;
  /** Differentiate with respect to this input (default: f32 inputs). */
  readonly grad?: boolean;
}

export interface OpCase {
  readonly op: string;
  readonly inputs: readonly InputSpec[];
  readonly attrs?: Attrs;
  readonly seed?: number;
  /** Largest accepted gradcheck error (relative, see gradientError); default 1e-6. */
  readonly tol?: number;
  /** Largest accepted |onnx − reference| / max(1, max |reference|); default 1e-4. */
  readonly ortTol?: number;
}

export function makeInput(spec: InputSpec, prng: Prng): Tensor {
  const dtype = spec.dtype ?? (spec.fill === 'bool' ? 'bool' : typeof spec.fill === 'object' && 'ints' in spec.fill ? 'i64' : 'f32');
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const fill = spec.fill ?? 'normal';
  const values = Array.isArray(fill)
    ? fill
    : Array.from({ length: n }, () => {
        if (fill === 'normal') return prng.normal();
        if (fill === 'positive') return 0.5 + 1.5 * prng.uniform();
        if (fill === 'bool') return prng.uniform() < 0.5 ? 1 : 0;
        return prng.int((fill as { ints: number }).ints);
      });
  return makeTensor(dtype, spec.shape, values);
}

function maxAbs(t: Tensor): number {
  let m = 0;
  for (const v of t.data) m = Math.max(m, Math.abs(v));
  return m;
}

function expectClose(actual: Tensor, expected: Tensor, tol: number, what: string): void {
  expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
  const scale = Math.max(1, maxAbs(expected));
  let worst = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i]!;
    const e = expected.data[i]!;
    if (Number.isNaN(e) || Number.isNaN(a)) expect(Number.isNaN(a), `${what}[${i}] NaN mismatch`).toBe(Number.isNaN(e));
    else if (!Number.isFinite(e)) expect(a, `${what}[${i}]`).toBe(e);
    else worst = Math.max(worst, Math.abs(a - e) / scale);
  }
  expect(worst, `${what}: worst |onnx - reference| / scale`).toBeLessThanOrEqual(tol);
}

/** Runs every check of one op case; returns the gradcheck results (empty when nothing is differentiable). */
export async function checkOp(c: OpCase): Promise<GradcheckResult[]> {
  const prng = new Prng(c.seed ?? 1);
  const feeds = new Map<string, Tensor>();
  c.inputs.forEach((spec, i) => feeds.set(`x${i}`, makeInput(spec, prng)));
  const attrs = c.attrs ?? {};
  const ortTol = c.ortTol ?? 1e-4;

  // Forward: ONNX vs reference.
  const fb = new GraphBuilder(`${c.op}_forward`);
  const inputs = c.inputs.map((_, i) => {
    const t = feeds.get(`x${i}`)!;
    return fb.input(`x${i}`, t.dtype, t.shape);
  });
  const outs = fb.emit(c.op, inputs, attrs);
  outs.forEach((o, i) => fb.output(`y${i}`, o));
  const forward = fb.build();
  const reference = evaluateGraph(forward, feeds);
  const onnxOut = await runOnce(emitModel(forward).bytes, feeds);
  for (const [name, ref] of reference) expectClose(onnxOut.get(name)!, ref, ortTol, `${c.op} ${name}`);

  const diffIndices = c.inputs.map((s, i) => ((s.grad ?? (feeds.get(`x${i}`)!.dtype === 'f32')) ? i : -1)).filter((i) => i >= 0);
  if (diffIndices.length === 0) return [];

  // Loss: sum of each float output times fixed random weights, so every output element matters differently.
  const weights = outs.map((o) => (o.dtype === 'f32' ? makeInput({ shape: o.shape }, prng) : null));
  const build = (b: GraphBuilder): { loss: Value; wrt: Value[] } => {
    const ins = c.inputs.map((_, i) => {
      const t = feeds.get(`x${i}`)!;
      return b.input(`x${i}`, t.dtype, t.shape);
    });
    const ys = b.emit(c.op, ins, attrs);
    let loss: Value | null = null;
    ys.forEach((y, i) => {
      const w = weights[i];
      if (!w) return;
      const prod = b.mul(y, b.constant(w));
      const term = y.shape.length ? b.reduceSum(prod, y.shape.map((_, a) => a)) : prod;
      loss = loss ? b.add(loss, term) : term;
    });
    return { loss: loss!, wrt: diffIndices.map((i) => ins[i]!) };
  };

  const results = gradcheck(build, feeds, { samplesPerInput: 64 });
  for (const r of results) {
    expect(r.maxRelError, `${c.op}: gradient of ${r.name} (worst at ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric})`).toBeLessThanOrEqual(c.tol ?? 1e-6);
  }

  // The gradient graph itself, lowered to ONNX, against the reference.
  const { graph } = buildGradientGraph(`${c.op}_grad`, build);
  const refGrads = evaluateGraph(graph, feeds);
  const onnxGrads = await runOnce(emitModel(graph).bytes, feeds);
  for (const [name, ref] of refGrads) expectClose(onnxGrads.get(name)!, ref, ortTol, `${c.op} ${name}`);
  return results;
}

/** The message an op's type rule throws for inputs of these types (fails if it accepts them). */
export function inferError(op: string, inputs: readonly ValueType[], attrs: Attrs = {}): string {
  try {
    lookupOp(op).infer(inputs, attrs);
  } catch (e) {
    expect(e).toBeInstanceOf(IrError);
    return (e as Error).message;
  }
  throw new Error(`${op}: infer accepted the inputs`);
}

/** The first output of an op's reference semantics. */
export function evalOp(op: string, inputs: Tensor[], attrs: Attrs = {}): Tensor {
  return lookupOp(op).evaluate(inputs, attrs)[0]!;
}
