import { describe, expect, it } from 'vitest';
import { type ValueType } from '../../src/ir/graph.js';
import { makeTensor, type DType, type Tensor } from '../../src/ir/tensor.js';
import { checkOp, evalOp, inferError } from './opcheck.js';

const t = (dtype: DType, shape: number[]): ValueType => ({ dtype, shape });
const f32 = (...shape: number[]): ValueType => t('f32', shape);


/** 0, 1, …, n−1 in a shape. */
function arange(shape: number[], dtype: DType = 'f32'): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return makeTensor(dtype, shape, Array.from({ length: n }, (_, i) => i));
}

describe('reshape', () => {
  it('ONNX, gradcheck, gradient graph', async () => {
    await checkOp({ op: 'reshape', inputs: [{ shape: [2, 3, 4] }], attrs: { shape: [6, 4] } });
    await checkOp({ op: 'reshape', inputs: [{ shape: [2, 3, 4] }], attrs: { shape: [4, -1, 2] }, seed: 2 });
    await checkOp({ op: 'reshape', inputs: [{ shape: [6], fill: { ints: 5 } }], attrs: { shape: [1, 3, 2] } });
    await checkOp({ op: 'reshape', inputs: [{ shape: [2, 2], fill: 'bool' }], attrs: { shape: [4] } });
  });

  it('resolves -1 and keeps the order', () => {
    expect(evalOp('reshape', [arange([2, 3])], { shape: [-1, 2] })).toEqual(arange([3, 2]));
  });

  it('rejects bad target shapes', () => {
    expect(inferError('reshape', [f32(2, 3)], { shape: [4, 2] })).toBe('reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)');
    expect(inferError('reshape', [f32(2, 3)], { shape: [4, -1] })).toBe('reshape: cannot reshape [2, 3] (6 elements) to [4, -1]');
    expect(inferError('reshape', [f32(2, 3)], { shape: [-1, -1] })).toBe('reshape: invalid target shape [-1, -1] (dimensions ≥ 0, at most one -1)');
  });
});

describe('transpose', () => {
  it('ONNX, gradcheck, gradient graph', async () => {
    await checkOp({ op: 'transpose', inputs: [{ shape: [2, 3, 4] }], attrs: { perm: [2, 0, 1] } });
    await checkOp({ op: 'transpose', inputs: [{ shape: [3, 5] }], attrs: { perm: [1, 0] }, seed: 3 });
    await checkOp({ op: 'transpose', inputs: [{ shape: [2, 3, 4, 5] }], attrs: { perm: [0, 2, 3, 1] }, seed: 4 });
    await checkOp({ op: 'transpose', inputs: [{ shape: [2, 3], fill: { ints: 9 } }], attrs: { perm: [1, 0] } });
    await checkOp({ op: 'transpose', inputs: [{ shape: [2, 3], fill: 'bool' }], attrs: { perm: [1, 0] } });
  });

  it('evaluates a 2×3 transpose', () => {
    expect(evalOp('transpose', [arange([2, 3])], { perm: [1, 0] })).toEqual(makeTensor('f32', [3, 2], [0, 3, 1, 4, 2, 5]));
  });

  it('rejects a bad perm', () => {
    expect(inferError('transpose', [f32(2, 3, 4)], { perm: [0, 0, 1] })).toBe('transpose: perm [0, 0, 1] is not a permutation of the axes of [2, 3, 4]');
    expect(inferError('transpose', [f32(2, 3)], { perm: [1, 0, 2] })).toBe('transpose: perm [1, 0, 2] is not a permutation of the axes of [2, 3]');
  });
});

describe('slice', () => {
  it('step 1, negative and out-of-range bounds clamped as in ONNX (ONNX, gradcheck, gradient graph)', async () => {
    await checkOp({ op: 'slice', inputs: [{ shape: [4, 5] }], attrs: { starts: [1, -3], ends: [3, 100], axes: [0, 1], steps: [1, 1] } });
    await checkOp({ op: 'slice', inputs: [{ shape: [2, 3, 4] }], attrs: { starts: [-100], ends: [-1], axes: [-1], steps: [1] }, seed: 2 });
    await checkOp({ op: 'slice', inputs: [{ shape: [6], fill: { ints: 10 } }], attrs: { starts: [2], ends: [5], axes: [0], steps: [1] } });
    await checkOp({ op: 'slice', inputs: [{ shape: [6], fill: 'bool' }], attrs: { starts: [1], ends: [6], axes: [0], steps: [2] } });
  });

  it('steps > 1 (ONNX, gradcheck, gradient graph)', async () => {
    // dim 5, 0:5:2 → 3 elements whose interleaved gradient (length 6) is trimmed to 5.
    await checkOp({ op: 'slice', inputs: [{ shape: [5, 6] }], attrs: { starts: [0, 1], ends: [5, -1], axes: [0, 1], steps: [2, 3] }, seed: 3 });
    // dim 6, 1:4:2 → 2 elements, padded after.
    await checkOp({ op: 'slice', inputs: [{ shape: [3, 6, 2] }], attrs: { starts: [1], ends: [4], axes: [1], steps: [2] }, seed: 4 });
    await checkOp({ op: 'slice', inputs: [{ shape: [7, 3] }], attrs: { starts: [-6, 0], ends: [7, 3], axes: [0, 1], steps: [4, 2] }, seed: 5 });
  });

  it('evaluates hand-computed slices', () => {
    const x = arange([3, 4]);
    expect(evalOp('slice', [x], { starts: [1, -3], ends: [3, 100], axes: [0, 1], steps: [1, 1] })).toEqual(makeTensor('f32', [2, 3], [5, 6, 7, 9, 10, 11]));
    expect(evalOp('slice', [x], { starts: [0], ends: [4], axes: [1], steps: [2] })).toEqual(makeTensor('f32', [3, 2], [0, 2, 4, 6, 8, 10]));
    expect(evalOp('slice', [x], { starts: [3], ends: [1], axes: [1], steps: [1] }).shape).toEqual([3, 0]);
  });

  it('rejects bad attributes', () => {
    expect(inferError('slice', [f32(4, 5)], { starts: [0], ends: [2], axes: [0], steps: [-1] })).toBe('slice: steps must be positive, got -1 (input [4, 5])');
    expect(inferError('slice', [f32(4, 5)], { starts: [0], ends: [2], axes: [0], steps: [0] })).toBe('slice: steps must be positive, got 0 (input [4, 5])');
    expect(inferError('slice', [f32(4, 5)], { starts: [0], ends: [2], axes: [2], steps: [1] })).toBe('slice: axis 2 is out of range for shape [4, 5]');
    expect(inferError('slice', [f32(4, 5)], { starts: [0, 1], ends: [2], axes: [0], steps: [1] })).toBe('slice: starts, ends, axes and steps differ in length (2, 1, 1, 1)');
  });
});

describe('concat', () => {
  it('ONNX, gradcheck, gradient graph', async () => {
    await checkOp({ op: 'concat', inputs: [{ shape: [2, 3] }, { shape: [2, 1] }, { shape: [2, 4] }], attrs: { axis: 1 } });
    await checkOp({ op: 'concat', inputs: [{ shape: [1, 3, 2] }, { shape: [2, 3, 2] }], attrs: { axis: 0 }, seed: 2 });
    await checkOp({ op: 'concat', inputs: [{ shape: [2, 3, 2] }, { shape: [2, 3, 1] }], attrs: { axis: -1 }, seed: 3 });
    await checkOp({ op: 'concat', inputs: [{ shape: [2], fill: { ints: 4 } }, { shape: [3], fill: { ints: 4 } }], attrs: { axis: 0 } });
    await checkOp({ op: 'concat', inputs: [{ shape: [2, 1], fill: 'bool' }, { shape: [2, 2], fill: 'bool' }], attrs: { axis: 1 } });
  });

  it('evaluates a concatenation along the last axis', () => {
    const a = makeTensor('f32', [2, 1], [1, 2]);
    const b = makeTensor('f32', [2, 2], [3, 4, 5, 6]);
    expect(evalOp('concat', [a, b], { axis: 1 })).toEqual(makeTensor('f32', [2, 3], [1, 3, 4, 2, 5, 6]));
  });

  it('rejects mismatched inputs', () => {
    expect(inferError('concat', [f32(2, 3), f32(3, 3)], { axis: 1 })).toBe('concat: shapes differ outside axis 1: [2, 3] and [3, 3]');
    expect(inferError('concat', [f32(2, 3), f32(2, 3, 1)], { axis: 0 })).toBe('concat: shapes differ outside axis 0: [2, 3] and [2, 3, 1]');
    expect(inferError('concat', [f32(2, 3), t('i64', [2, 3])], { axis: 0 })).toBe('concat: inputs have different dtypes: f32 and i64');
    expect(inferError('concat', [f32(2, 3)], { axis: 2 })).toBe('concat: axis 2 is out of range for shape [2, 3]');
    expect(inferError('concat', [], { axis: 0 })).toBe('concat: needs at least one input');
  });
});

describe('expand', () => {
  it('ONNX, gradcheck, gradient graph', async () => {
    await checkOp({ op: 'expand', inputs: [{ shape: [3, 1] }], attrs: { shape: [2, 3, 4] } });
    await checkOp({ op: 'expand', inputs: [{ shape: [4] }], attrs: { shape: [2, 3, 4] }, seed: 2 });
    await checkOp({ op: 'expand', inputs: [{ shape: [1, 1] }], attrs: { shape: [3, 5] }, seed: 3 });
    await checkOp({ op: 'expand', inputs: [{ shape: [2, 1], fill: 'bool' }], attrs: { shape: [2, 3] } });
  });

  it('evaluates a broadcast', () => {
    expect(evalOp('expand', [makeTensor('f32', [2, 1], [1, 2])], { shape: [2, 2, 3] })).toEqual(makeTensor('f32', [2, 2, 3], [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2]));
  });

  it('rejects shapes it cannot broadcast to', () => {
    expect(inferError('expand', [f32(3, 4)], { shape: [2, 5] })).toBe('expand: cannot broadcast [3, 4] to [2, 5]');
    expect(inferError('expand', [f32(2, 3)], { shape: [3] })).toBe('expand: cannot broadcast [2, 3] to [3]');
    expect(inferError('expand', [f32(3)], { shape: [3, 1] })).toBe('expand: cannot broadcast [3] to [3, 1]');
  });
});

describe('pad', () => {
  it('ONNX, gradcheck, gradient graph', async () => {
    await checkOp({ op: 'pad', inputs: [{ shape: [2, 3] }], attrs: { pads: [1, 0, 2, 1] } });
    await checkOp({ op: 'pad', inputs: [{ shape: [2, 3, 4] }], attrs: { pads: [0, 2, 0, 1, 0, 3] }, seed: 2 });
    await checkOp({ op: 'pad', inputs: [{ shape: [3], fill: { ints: 7 } }], attrs: { pads: [2, 1] } });
    await checkOp({ op: 'pad', inputs: [{ shape: [2, 2], fill: 'bool' }], attrs: { pads: [0, 1, 1, 0] } });
  });

  it('evaluates zero padding', () => {
    expect(evalOp('pad', [makeTensor('f32', [1, 2], [1, 2])], { pads: [1, 0, 0, 1] })).toEqual(makeTensor('f32', [2, 3], [0, 0, 0, 1, 2, 0]));
  });

  it('rejects bad pads', () => {
    expect(inferError('pad', [f32(2, 3)], { pads: [1, -1, 0, 0] })).toBe('pad: pads must be non-negative, got [1, -1, 0, 0] for input [2, 3]');
    expect(inferError('pad', [f32(2, 3)], { pads: [1, 1] })).toBe('pad: pads [1, 1] must have 4 entries for input [2, 3]');
  });
});
