import { describe, expect, it } from 'vitest';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import { type ValueType } from '../../src/ir/graph.js';
import { buildGradientGraph } from '../../src/ir/gradcheck.js';
import { makeTensor, type DType } from '../../src/ir/tensor.js';
import { checkOp, evalOp, inferError } from './opcheck.js';

const t = (dtype: DType, shape: number[]): ValueType => ({ dtype, shape });
const f32 = (...shape: number[]): ValueType => t('f32', shape);


describe('matmul', () => {
  it('ONNX, gradcheck, gradient graph, with batch broadcasting', async () => {
    const cases: [number[], number[]][] = [
      [[2, 3], [3, 4]],
      [[2, 3, 4], [4, 5]],
      [[3, 4], [2, 4, 5]],
      [[2, 1, 3, 4], [3, 4, 2]],
      [[1, 2, 3], [4, 3, 1]],
    ];
    for (const [i, [a, b]] of cases.entries()) await checkOp({ op: 'matmul', inputs: [{ shape: a }, { shape: b }], seed: 40 + i });
  });

  it('multiplies 2×2 literals', () => {
    const a = makeTensor('f32', [2, 2], [1, 2, 3, 4]);
    const b = makeTensor('f32', [2, 2], [5, 6, 7, 8]);
    expect(evalOp('matmul', [a, b])).toEqual(makeTensor('f32', [2, 2], [19, 22, 43, 50]));
    // Batched: [2, 1, 2] @ [2, 2] → each row vector times b.
    const rows = makeTensor('f32', [2, 1, 2], [1, 0, 0, 1]);
    expect(evalOp('matmul', [rows, b])).toEqual(makeTensor('f32', [2, 1, 2], [5, 6, 7, 8]));
  });

  it('rejects mismatched shapes', () => {
    expect(inferError('matmul', [f32(2, 3), f32(4, 5)])).toBe('matmul: inner dimensions differ: [2, 3] @ [4, 5]');
    expect(inferError('matmul', [f32(3), f32(3, 4)])).toBe('matmul: operands must have rank ≥ 2: [3] @ [3, 4]');
    expect(inferError('matmul', [f32(2, 3, 4), f32(5, 4, 6)])).toBe('matmul: batch dimensions do not broadcast: [2, 3, 4] @ [5, 4, 6]');
    expect(inferError('matmul', [f32(2, 3), t('i64', [3, 4])])).toBe('matmul: operands must be f32, got f32[2, 3] @ i64[3, 4]');
  });
});

describe('reductions', () => {
  const axesCases: [number[], number[], boolean][] = [
    [[2, 3, 4], [1], false],
    [[2, 3, 4], [0, -1], true],
    [[2, 3, 4], [-1, 0], false],
    [[5], [0], true],
    [[3, 4], [0, 1], false],
  ];
  for (const op of ['reduce_sum', 'reduce_mean', 'reduce_max']) {
    it(`${op}: ONNX, gradcheck, gradient graph`, async () => {
      for (const [i, [shape, axes, keepdims]] of axesCases.entries()) {
        // reduce_max over [3, 4] → a scalar, which the harness's loss cannot reduce further; keep it 1-D.
        const keep = keepdims || (shape.length === axes.length);
        await checkOp({ op, inputs: [{ shape }], attrs: { axes, keepdims: keep }, seed: 50 + i });
      }
    });
  }

  it('reduce_sum and reduce_max on i64 (ONNX)', async () => {
    for (const op of ['reduce_sum', 'reduce_max']) {
      await checkOp({ op, inputs: [{ shape: [3, 4], fill: { ints: 20 } }], attrs: { axes: [1], keepdims: false } });
    }
  });

  it('evaluates hand-computed values', () => {
    const x = makeTensor('f32', [2, 3], [1, 5, 3, -4, -2, -6]);
    expect(evalOp('reduce_sum', [x], { axes: [1], keepdims: false })).toEqual(makeTensor('f32', [2], [9, -12]));
    expect(evalOp('reduce_sum', [x], { axes: [0], keepdims: true })).toEqual(makeTensor('f32', [1, 3], [-3, 3, -3]));
    expect(evalOp('reduce_mean', [x], { axes: [-1], keepdims: false })).toEqual(makeTensor('f32', [2], [3, -4]));
    expect(evalOp('reduce_max', [x], { axes: [1], keepdims: true })).toEqual(makeTensor('f32', [2, 1], [5, -2]));
    expect(evalOp('reduce_max', [x], { axes: [0, 1], keepdims: false })).toEqual(makeTensor('f32', [], [5]));
  });

  it('reduce_max splits the gradient equally among tied maxima', () => {
    const { graph } = buildGradientGraph('ties', (b) => {
      const x = b.input('x', 'f32', [2, 3]);
      const m = b.reduceMax(x, [1]);
      return { loss: b.reduceSum(b.mul(m, b.constant(makeTensor('f32', [2], [1, 10]))), [0]), wrt: [x] };
    });
    const out = evaluateGraph(graph, new Map([['x', makeTensor('f32', [2, 3], [1, 3, 3, 7, 7, 7])]]));
    const g = [...out.get('grad:x')!.data];
    expect(g.slice(0, 3)).toEqual([0, 0.5, 0.5]);
    g.slice(3).forEach((v) => expect(v).toBeCloseTo(10 / 3, 12));
  });

  it('rejects bad axes', () => {
    expect(inferError('reduce_sum', [f32(2, 3)], { axes: [], keepdims: false })).toBe('reduce_sum: axes must not be empty (input [2, 3])');
    expect(inferError('reduce_mean', [f32(2, 3)], { axes: [2], keepdims: false })).toBe('reduce_mean: axis 2 is out of range for shape [2, 3]');
    expect(inferError('reduce_max', [f32(2, 3)], { axes: [-3], keepdims: true })).toBe('reduce_max: axis -3 is out of range for shape [2, 3]');
    expect(inferError('reduce_sum', [f32(2, 3)], { axes: [1, -1], keepdims: true })).toBe('reduce_sum: duplicate axes [1, -1] for shape [2, 3]');
    expect(inferError('reduce_sum', [f32(2, 3)], { axes: [1] })).toBe('reduce_sum: attribute keepdims must be a boolean, got undefined');
    expect(inferError('reduce_mean', [t('i64', [2])], { axes: [0], keepdims: false })).toBe('reduce_mean: input must be f32, got i64[2]');
  });
});
