import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import { type ValueType } from '../../src/ir/graph.js';
import { buildGradientGraph } from '../../src/ir/gradcheck.js';
import { makeTensor, type DType, type Tensor } from '../../src/ir/tensor.js';
import { runOnce } from '../../src/runtime/ort.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { checkOp, evalOp, inferError } from './opcheck.js';

const t = (dtype: DType, shape: number[]): ValueType => ({ dtype, shape });
const f32 = (...shape: number[]): ValueType => t('f32', shape);


const vec = (values: number[], dtype: DType = 'f32'): Tensor => makeTensor(dtype, [values.length], values);

/** n values with |v| ≥ 0.13, for ops with a kink at 0 (relu, abs). */
function awayFromZero(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (((i * 7) % 11) - 5) * 0.37 + 0.13);
}

describe('constant', () => {
  it('lowers f32, i64 and bool tensors', async () => {
    await checkOp({ op: 'constant', inputs: [], attrs: { value: makeTensor('f32', [2, 3], [1, -2, 3.5, 0, 1e-3, -7]) } });
    await checkOp({ op: 'constant', inputs: [], attrs: { value: makeTensor('i64', [3], [5, -1, 1234567]) } });
    await checkOp({ op: 'constant', inputs: [], attrs: { value: makeTensor('bool', [2, 2], [1, 0, 0, 1]) } });
    await checkOp({ op: 'constant', inputs: [], attrs: { value: makeTensor('f32', [], [2.5]) } });
  });

  it('rejects a non-tensor value', () => {
    expect(inferError('constant', [], { value: 3 })).toBe('constant: attribute value must be a tensor');
  });
});

describe('unary float ops', () => {
  const normal = ['neg', 'exp', 'tanh', 'sigmoid', 'gelu', 'silu', 'softplus', 'log_sigmoid', 'cos', 'sin'];
  for (const op of normal) {
    it(`${op}: ONNX, gradcheck, gradient graph`, async () => {
      await checkOp({ op, inputs: [{ shape: [2, 3, 4] }], seed: 3 });
      await checkOp({ op, inputs: [{ shape: [5] }], seed: 4 });
    });
  }
  for (const op of ['log', 'sqrt', 'reciprocal']) {
    it(`${op} (positive inputs): ONNX, gradcheck, gradient graph`, async () => {
      await checkOp({ op, inputs: [{ shape: [2, 3, 4], fill: 'positive' }], seed: 5 });
      await checkOp({ op, inputs: [{ shape: [1], fill: 'positive' }], seed: 6 });
    });
  }
  for (const op of ['relu', 'abs']) {
    it(`${op} (away from the kink): ONNX, gradcheck, gradient graph`, async () => {
      await checkOp({ op, inputs: [{ shape: [3, 7], fill: awayFromZero(21) }] });
    });
  }

  it('softplus and log_sigmoid over a wide range (ONNX, gradcheck, gradient graph)', async () => {
    // Moderate and extreme inputs apart: with |x| = 1000 in the loss, central differences of the
    // moderate elements' small gradients drown in the loss's rounding error.
    const wide = [-30, -20, -5, -0.5, 0.5, 5, 20, 30];
    const extreme = [-1000, -200, 200, 1000];
    for (const op of ['softplus', 'log_sigmoid']) {
      await checkOp({ op, inputs: [{ shape: [8], fill: wide }] });
      await checkOp({ op, inputs: [{ shape: [4], fill: extreme }] });
    }
  });

  it('softplus and log_sigmoid lowered to ONNX match the reference elementwise, small values included', async () => {
    const xs = [-1000, -100, -30, -10, -1, 0, 1, 10, 30, 100, 1000];
    const b = new GraphBuilder('stable');
    const x = b.input('x', 'f32', [xs.length]);
    b.output('sp', b.softplus(x));
    b.output('ls', b.logSigmoid(x));
    const g = b.build();
    const feeds = new Map([['x', vec(xs)]]);
    const ref = evaluateGraph(g, feeds);
    const ort = await runOnce(emitModel(g).bytes, feeds);
    for (const name of ['sp', 'ls']) {
      const r = ref.get(name)!.data;
      const o = ort.get(name)!.data;
      for (let i = 0; i < xs.length; i++) {
        expect(Number.isFinite(o[i]!), `${name}(${xs[i]})`).toBe(true);
        // float32: a relative error, or an absolute one for values that underflow.
        expect(Math.abs(o[i]! - r[i]!), `${name}(${xs[i]}) = ${o[i]} vs ${r[i]}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(r[i]!)) + 1e-30);
      }
    }
  });

  it('evaluates hand-computed values', () => {
    expect(evalOp('gelu', [vec([1])]).data[0]).toBeCloseTo(0.8411919906082768, 14);
    expect(evalOp('gelu', [vec([0])]).data[0]).toBe(0);
    expect(evalOp('softplus', [vec([1000])]).data[0]).toBe(1000);
    expect(evalOp('softplus', [vec([-1000])]).data[0]).toBe(0);
    expect(evalOp('softplus', [vec([0])]).data[0]).toBeCloseTo(Math.LN2, 15);
    expect(evalOp('log_sigmoid', [vec([-1000])]).data[0]).toBe(-1000);
    expect(Math.abs(evalOp('log_sigmoid', [vec([1000])]).data[0]!)).toBe(0);
    expect(evalOp('sigmoid', [vec([-1000, 0, 1000])]).data).toEqual(Float64Array.from([0, 0.5, 1]));
    expect(evalOp('silu', [vec([2])]).data[0]).toBeCloseTo(2 / (1 + Math.exp(-2)), 15);
    expect(evalOp('relu', [vec([-1, 0, 2])]).data).toEqual(Float64Array.from([0, 0, 2]));
  });

  it('rejects non-f32 inputs and wrong arity', () => {
    expect(inferError('exp', [t('i64', [2, 3])])).toBe('exp: input must be f32, got i64[2, 3]');
    expect(inferError('tanh', [f32(2), f32(2)])).toBe('tanh: expects 1 input, got 2');
  });
});

describe('binary broadcasting ops', () => {
  const shapes: [number[], number[]][] = [
    [[2, 3, 4], [4]],
    [[3, 1], [1, 5]],
    [[2, 3], [2, 3]],
    [[], [2, 2]],
  ];
  for (const op of ['add', 'sub', 'mul', 'maximum', 'minimum']) {
    it(`${op}: ONNX, gradcheck, gradient graph`, async () => {
      for (const [i, [a, b]] of shapes.entries()) await checkOp({ op, inputs: [{ shape: a }, { shape: b }], seed: 10 + i });
    });
  }
  it('div: ONNX, gradcheck, gradient graph', async () => {
    for (const [i, [a, b]] of shapes.entries()) await checkOp({ op: 'div', inputs: [{ shape: a }, { shape: b, fill: 'positive' }], seed: 20 + i });
  });
  it('pow: ONNX, gradcheck, gradient graph', async () => {
    for (const [i, [a, b]] of shapes.entries()) await checkOp({ op: 'pow', inputs: [{ shape: a, fill: 'positive' }, { shape: b }], seed: 30 + i });
  });
  it('add, sub, mul on i64', async () => {
    for (const op of ['add', 'sub', 'mul']) {
      await checkOp({ op, inputs: [{ shape: [2, 3], fill: { ints: 100 } }, { shape: [3], fill: [-3, 0, 7], dtype: 'i64' }] });
    }
    expect(evalOp('mul', [vec([3, -4], 'i64'), vec([5], 'i64')])).toEqual(makeTensor('i64', [2], [15, -20]));
  });

  it('maximum / minimum send the gradient of a tie to the first input', () => {
    for (const op of ['maximum', 'minimum']) {
      const { graph } = buildGradientGraph(op, (b) => {
        const a = b.input('a', 'f32', [3]);
        const c = b.input('c', 'f32', [3]);
        return { loss: b.reduceSum(b.one(op, [a, c]), [0]), wrt: [a, c] };
      });
      const out = evaluateGraph(graph, new Map([['a', vec([1, 2, 3])], ['c', vec([2, 2, 2])]]));
      const first = op === 'maximum' ? [0, 1, 1] : [1, 1, 0];
      expect([...out.get('grad:a')!.data], op).toEqual(first);
      expect([...out.get('grad:c')!.data], op).toEqual(first.map((v) => 1 - v));
    }
  });

  it('pow with a constant exponent differentiates a negative base (no log of the base)', () => {
    const { graph } = buildGradientGraph('square', (b) => {
      const x = b.input('x', 'f32', [3]);
      return { loss: b.reduceSum(b.pow(x, b.scalar(2)), [0]), wrt: [x] };
    });
    expect(graph.nodes.some((n) => n.op === 'log')).toBe(false);
    const out = evaluateGraph(graph, new Map([['x', vec([-3, 0.5, 2])]]));
    expect([...out.get('grad:x')!.data]).toEqual([-6, 1, 4]);
  });

  it('rejects shapes that do not broadcast and mixed dtypes', () => {
    expect(inferError('add', [f32(2, 3), f32(4)])).toBe('add: shapes do not broadcast: [2, 3] and [4]');
    expect(inferError('mul', [f32(3, 2), f32(2, 3)])).toBe('mul: shapes do not broadcast: [3, 2] and [2, 3]');
    expect(inferError('add', [f32(2), t('i64', [2])])).toBe('add: expects two f32 or i64 inputs of the same dtype, got f32[2] and i64[2]');
    expect(inferError('div', [t('i64', [2]), t('i64', [2])])).toBe('div: expects two f32 inputs of the same dtype, got i64[2] and i64[2]');
    expect(inferError('maximum', [f32(2)])).toBe('maximum: expects 2 inputs, got 1');
  });
});

describe('comparisons, logic, where, cast', () => {
  it('less, greater, equal on f32 and i64 (ONNX)', async () => {
    const a = [0.5, -1, 2, 3, 0, 1];
    for (const op of ['less', 'greater', 'equal']) {
      await checkOp({ op, inputs: [{ shape: [2, 3], fill: a, grad: false }, { shape: [3], fill: [0.5, 2, 2], grad: false }] });
      await checkOp({ op, inputs: [{ shape: [3, 1], fill: { ints: 3 } }, { shape: [1, 4], fill: { ints: 3 } }], seed: 7 });
    }
    await checkOp({ op: 'equal', inputs: [{ shape: [4], fill: 'bool' }, { shape: [4], fill: 'bool' }] });
    expect(evalOp('less', [vec([1, 2, 3]), vec([2])])).toEqual(makeTensor('bool', [3], [1, 0, 0]));
    expect(evalOp('equal', [vec([1, 2, 3]), vec([2])])).toEqual(makeTensor('bool', [3], [0, 1, 0]));
  });

  it('not, and, or (ONNX)', async () => {
    await checkOp({ op: 'not', inputs: [{ shape: [2, 3], fill: 'bool' }] });
    for (const op of ['and', 'or']) {
      await checkOp({ op, inputs: [{ shape: [2, 1], fill: [1, 0] }, { shape: [3], fill: [1, 0, 1] }].map((s) => ({ ...s, dtype: 'bool' as const })) });
      await checkOp({ op, inputs: [{ shape: [4, 5], fill: 'bool' }, { shape: [5], fill: 'bool' }], seed: 9 });
    }
    expect(evalOp('or', [vec([1, 0, 0], 'bool'), vec([0, 0, 1], 'bool')])).toEqual(makeTensor('bool', [3], [1, 0, 1]));
  });

  it('where broadcasts all three inputs (ONNX, gradcheck, gradient graph)', async () => {
    await checkOp({ op: 'where', inputs: [{ shape: [3, 1], fill: 'bool' }, { shape: [1, 5] }, { shape: [5] }], seed: 2 });
    await checkOp({ op: 'where', inputs: [{ shape: [2, 3, 4], fill: 'bool' }, { shape: [2, 3, 4] }, { shape: [] }], seed: 3 });
    await checkOp({ op: 'where', inputs: [{ shape: [4], fill: 'bool' }, { shape: [4], fill: { ints: 9 } }, { shape: [1], fill: { ints: 9 } }], seed: 4 });
    expect(evalOp('where', [vec([1, 0], 'bool'), vec([1, 2]), vec([9])])).toEqual(makeTensor('f32', [2], [1, 9]));
  });

  it('cast between f32, i64 and bool (ONNX)', async () => {
    const xs = [2.75, -2.75, 0.5, -0.5, 0, 3, -7, 1e6];
    await checkOp({ op: 'cast', inputs: [{ shape: [8], fill: xs, grad: false }], attrs: { to: 'i64' } });
    await checkOp({ op: 'cast', inputs: [{ shape: [8], fill: xs, grad: false }], attrs: { to: 'bool' } });
    await checkOp({ op: 'cast', inputs: [{ shape: [2, 3], fill: { ints: 50 } }], attrs: { to: 'f32' } });
    await checkOp({ op: 'cast', inputs: [{ shape: [2, 3], fill: [-5, 0, 3, 0, 1, 0], dtype: 'i64' }], attrs: { to: 'bool' } });
    await checkOp({ op: 'cast', inputs: [{ shape: [5], fill: 'bool' }], attrs: { to: 'f32' } });
    await checkOp({ op: 'cast', inputs: [{ shape: [5], fill: 'bool' }], attrs: { to: 'i64' } });
    expect([...evalOp('cast', [vec(xs)], { to: 'i64' }).data]).toEqual([2, -2, 0, -0, 0, 3, -7, 1e6]);
    expect([...evalOp('cast', [vec(xs)], { to: 'bool' }).data]).toEqual([1, 1, 1, 1, 0, 1, 1, 1]);
  });

  it('rejects bad dtypes and shapes', () => {
    expect(inferError('less', [f32(2), t('i64', [2])])).toBe('less: expects two f32 or i64 inputs of the same dtype, got f32[2] and i64[2]');
    expect(inferError('greater', [t('bool', [2]), t('bool', [2])])).toBe('greater: expects two f32 or i64 inputs of the same dtype, got bool[2] and bool[2]');
    expect(inferError('equal', [f32(2, 3), f32(3, 2)])).toBe('equal: shapes do not broadcast: [2, 3] and [3, 2]');
    expect(inferError('and', [f32(2), f32(2)])).toBe('and: expects two bool inputs of the same dtype, got f32[2] and f32[2]');
    expect(inferError('not', [f32(2)])).toBe('not: input must be bool, got f32[2]');
    expect(inferError('where', [f32(2), f32(2), f32(2)])).toBe('where: condition must be bool, got f32[2]');
    expect(inferError('where', [t('bool', [2]), f32(2), t('i64', [2])])).toBe('where: branches have different dtypes: f32[2] and i64[2]');
    expect(inferError('where', [t('bool', [3]), f32(2, 1), f32(4)])).toBe('where: shapes do not broadcast: [3], [2, 1] and [4]');
    expect(inferError('cast', [f32(2)], { to: 'f8' })).toBe('cast: attribute to must be one of f32, f16, bf16, i64, i32, i8, u8, bool, got "f8"');
  });
});
