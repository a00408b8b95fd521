import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Attrs } from '../../src/ir/graph.js';
import { lookupOp } from '../../src/ir/ops/index.js';
import { makeTensor, type DType, type Tensor } from '../../src/ir/tensor.js';
import { runOnce } from '../../src/runtime/ort.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { checkOp, inferError as sharedInferError } from './opcheck.js';

const f32 = (shape: readonly number[], data: readonly number[]): Tensor => makeTensor('f32', shape, data);
const i64 = (shape: readonly number[], data: readonly number[]): Tensor => makeTensor('i64', shape, data);

function ref(op: string, inputs: readonly Tensor[], attrs: Attrs = {}): Tensor {
  return lookupOp(op).evaluate(inputs, attrs)[0]!;
}

/** The message `infer` throws for inputs given as [dtype, shape] pairs. */
const inferError = (op: string, inputs: readonly [DType, readonly number[]][], attrs: Attrs = {}): string =>
  sharedInferError(op, inputs.map(([dtype, shape]) => ({ dtype, shape })), attrs);

/** A one-node graph of `op`, run by onnxruntime. */
async function onnx(op: string, inputs: readonly Tensor[], attrs: Attrs = {}): Promise<Tensor> {
  const b = new GraphBuilder(op);
  const feeds = new Map<string, Tensor>();
  const values = inputs.map((t, i) => {
    feeds.set(`x${i}`, t);
    return b.input(`x${i}`, t.dtype, t.shape);
  });
  b.output('y', b.one(op, values, attrs));
  return (await runOnce(emitModel(b.build()).bytes, feeds)).get('y')!;
}

describe('gather', () => {
  it('picks rows, repeated ids included', async () => {
    const table = f32([3, 2], [1, 2, 3, 4, 5, 6]);
    const ids = i64([2, 2], [2, 0, 2, 2]);
    const y = ref('gather', [table, ids]);
    expect(y.shape).toEqual([2, 2, 2]);
    expect(Array.from(y.data)).toEqual([5, 6, 1, 2, 5, 6, 5, 6]);
    expect(Array.from((await onnx('gather', [table, ids])).data)).toEqual([5, 6, 1, 2, 5, 6, 5, 6]);
    expect(Array.from(ref('gather', [f32([4], [7, 8, 9, 10]), i64([], [3])]).data)).toEqual([10]);
  });

  it('rejects non-integer ids, a scalar table and out-of-range ids', () => {
    expect(inferError('gather', [['f32', [5, 4]], ['f32', [3]]])).toBe('gather: ids must be i64, not f32[3]');
    expect(inferError('gather', [['f32', []], ['i64', [3]]])).toBe('gather: table must have a row axis, not be a scalar');
    expect(inferError('gather', [['f32', [5, 4]]])).toBe('gather: expects 2 inputs, got 1');
    expect(() => ref('gather', [f32([2, 1], [1, 2]), i64([2], [0, 2])])).toThrow('gather: index 2 at position 1 is outside [0, 2) (the table has 2 rows)');
    expect(() => ref('gather', [f32([2, 1], [1, 2]), i64([1], [-1])])).toThrow('gather: index -1 at position 0 is outside [0, 2)');
  });

  it('checks gather with repeated ids', async () => {
    await checkOp({ op: 'gather', inputs: [{ shape: [6, 4] }, { shape: [2, 3], dtype: 'i64', fill: [1, 1, 5, 0, 1, 3] }], seed: 21 });
  });

  it('checks gather from a rank-1 and a rank-3 table', async () => {
    await checkOp({ op: 'gather', inputs: [{ shape: [5] }, { shape: [7], fill: { ints: 5 } }], seed: 22 });
    await checkOp({ op: 'gather', inputs: [{ shape: [4, 2, 3] }, { shape: [], fill: { ints: 4 } }], seed: 23 });
  });
});

describe('scatter_add_rows', () => {
  it('adds updates at their rows and accumulates repeated ids (ONNX too)', async () => {
    const ids = i64([5], [1, 1, 3, 1, 0]);
    const updates = f32([5, 2], [1, 2, 10, 20, 100, 200, 1000, 2000, 5, 6]);
    const expected = [5, 6, 1011, 2022, 0, 0, 100, 200];
    const y = ref('scatter_add_rows', [ids, updates], { rows: 4 });
    expect(y.shape).toEqual([4, 2]);
    expect(Array.from(y.data)).toEqual(expected);
    expect(Array.from((await onnx('scatter_add_rows', [ids, updates], { rows: 4 })).data)).toEqual(expected);
  });

  it('rejects updates that do not start with the ids shape, and bad rows', () => {
    expect(inferError('scatter_add_rows', [['i64', [2, 3]], ['f32', [3, 2, 4]]], { rows: 8 })).toBe(
      'scatter_add_rows: updates [3, 2, 4] must start with the shape of ids [2, 3]',
    );
    expect(inferError('scatter_add_rows', [['i64', [2]], ['f32', [2, 4]]], { rows: 0 })).toBe('scatter_add_rows: attribute rows must be a positive integer, not 0');
    expect(inferError('scatter_add_rows', [['i64', [2]], ['f32', [2, 4]]])).toBe('scatter_add_rows: missing attribute rows');
    expect(inferError('scatter_add_rows', [['i64', [2]], ['i64', [2, 4]]], { rows: 3 })).toBe('scatter_add_rows: updates must be f32, not i64[2, 4]');
    expect(() => ref('scatter_add_rows', [i64([1], [3]), f32([1], [1])], { rows: 3 })).toThrow('scatter_add_rows: index 3 at position 0 is outside [0, 3) (rows is 3)');
  });

  it('checks scatter_add_rows with repeated ids', async () => {
    await checkOp({ op: 'scatter_add_rows', inputs: [{ shape: [5], dtype: 'i64', fill: [1, 1, 3, 1, 0] }, { shape: [5, 3] }], attrs: { rows: 4 }, seed: 24 });
    await checkOp({ op: 'scatter_add_rows', inputs: [{ shape: [2, 3], dtype: 'i64', fill: [6, 0, 6, 6, 2, 0] }, { shape: [2, 3, 2] }], attrs: { rows: 7 }, seed: 25 });
  });

  it('checks scatter_add_rows of scalar rows', async () => {
    await checkOp({ op: 'scatter_add_rows', inputs: [{ shape: [8], fill: { ints: 3 } }, { shape: [8] }], attrs: { rows: 3 }, seed: 26 });
  });
});

describe('take_along', () => {
  it('picks one entry per row', async () => {
    const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
    const idx = i64([2], [2, 0]);
    expect(Array.from(ref('take_along', [x, idx]).data)).toEqual([3, 4]);
    const y = await onnx('take_along', [x, idx]);
    expect(y.shape).toEqual([2]);
    expect(Array.from(y.data)).toEqual([3, 4]);
    expect(Array.from(ref('take_along', [f32([3], [7, 8, 9]), i64([], [1])]).data)).toEqual([8]);
  });

  it('rejects an idx that does not match the leading axes', () => {
    expect(inferError('take_along', [['f32', [2, 3, 5]], ['i64', [2, 5]]])).toBe('take_along: idx [2, 5] must match the leading axes of x [2, 3, 5]');
    expect(inferError('take_along', [['f32', []], ['i64', []]])).toBe('take_along: x must have at least one axis, not be a scalar');
    expect(() => ref('take_along', [f32([1, 3], [1, 2, 3]), i64([1], [3])])).toThrow('take_along: index 3 at position 0 is outside [0, 3) (the last axis has 3 entries)');
  });

  for (const [shape, seed] of [
    [[3, 5], 27],
    [[2, 3, 4], 28],
    [[6], 29],
  ] as const) {
    it(`checks take_along on [${shape.join(', ')}]`, async () => {
      await checkOp({ op: 'take_along', inputs: [{ shape }, { shape: shape.slice(0, -1), fill: { ints: shape[shape.length - 1]! } }], seed });
    });
  }
});

describe('one_hot', () => {
  it('follows ONNX OneHot: negative indices count from the end, out of range gives a zero row', async () => {
    const idx = i64([5], [0, 2, -1, 3, -100]);
    const expected = [1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    const y = ref('one_hot', [idx], { depth: 3 });
    expect(y.shape).toEqual([5, 3]);
    expect(Array.from(y.data)).toEqual(expected);
    expect(Array.from((await onnx('one_hot', [idx], { depth: 3 })).data)).toEqual(expected);
  });

  it('rejects a bad depth or idx dtype', () => {
    expect(inferError('one_hot', [['i64', [3]]], { depth: 0 })).toBe('one_hot: attribute depth must be a positive integer, not 0');
    expect(inferError('one_hot', [['i64', [3]]], { depth: 2.5 })).toBe('one_hot: attribute depth must be a positive integer, not 2.5');
    expect(inferError('one_hot', [['f32', [3]]], { depth: 4 })).toBe('one_hot: idx must be i64, not f32[3]');
  });

  it('checks one_hot', async () => {
    expect(await checkOp({ op: 'one_hot', inputs: [{ shape: [2, 3], fill: { ints: 4 } }], attrs: { depth: 4 }, seed: 30 })).toEqual([]);
    expect(await checkOp({ op: 'one_hot', inputs: [{ shape: [6], dtype: 'i64', fill: [-1, 5, 2, -5, 0, -4] }], attrs: { depth: 4 }, seed: 31 })).toEqual([]);
    expect(await checkOp({ op: 'one_hot', inputs: [{ shape: [], fill: { ints: 9 } }], attrs: { depth: 9 }, seed: 32 })).toEqual([]);
  });
});
