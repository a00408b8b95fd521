import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Attrs } from '../../src/ir/graph.js';
import { buildGradientGraph } from '../../src/ir/gradcheck.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import { lookupOp } from '../../src/ir/ops/index.js';
import { dropoutHash } from '../../src/ir/ops/nn.js';
import { makeTensor, type DType, type Tensor } from '../../src/ir/tensor.js';
import { runOnce } from '../../src/runtime/ort.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { checkOp, inferError as sharedInferError } from './opcheck.js';

const f32 = (shape: readonly number[], data: readonly number[]): Tensor => makeTensor('f32', shape, data);
const i64 = (shape: readonly number[], data: readonly number[]): Tensor => makeTensor('i64', shape, data);

/** The op's reference value on concrete tensors. */
function ref(op: string, inputs: readonly Tensor[], attrs: Attrs): Tensor {
  return lookupOp(op).evaluate(inputs, attrs)[0]!;
}

/** The message `infer` throws for inputs given as [dtype, shape] pairs. */
const inferError = (op: string, inputs: readonly [DType, readonly number[]][], attrs: Attrs = {}): string =>
  sharedInferError(op, inputs.map(([dtype, shape]) => ({ dtype, shape })), attrs);

/** Runs a one-node graph of `op` on ONNX and on the reference evaluator. */
async function both(op: string, inputs: readonly Tensor[], attrs: Attrs): Promise<{ onnx: Tensor; reference: Tensor }> {
  const b = new GraphBuilder(op);
  const feeds = new Map<string, Tensor>();
  const values = inputs.map((t, i) => {
    feeds.set(`x${i}`, t);
    return b.input(`x${i}`, t.dtype, t.shape);
  });
  b.output('y', b.one(op, values, attrs));
  const graph = b.build();
  return { onnx: (await runOnce(emitModel(graph).bytes, feeds)).get('y')!, reference: evaluateGraph(graph, feeds).get('y')! };
}

function expectValues(actual: Tensor, expected: readonly number[], digits = 12): void {
  expect(actual.data.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual.data[i]!, `[${i}]`).toBeCloseTo(e, digits));
}

describe('softmax, log_softmax', () => {
  it('computes softmax([0, ln 3]) = [0.25, 0.75]', () => {
    expectValues(ref('softmax', [f32([2], [0, Math.log(3)])], { axis: 0 }), [0.25, 0.75]);
    expectValues(ref('log_softmax', [f32([2], [0, Math.log(3)])], { axis: -1 }), [Math.log(0.25), Math.log(0.75)]);
  });

  it('normalises along the given axis and is stable for large logits', () => {
    // [[0, 1000], [ln 3, 1000]] along axis 0: each column is a separate softmax.
    const y = ref('softmax', [f32([2, 2], [0, 1000, Math.log(3), 1000])], { axis: 0 });
    expectValues(y, [0.25, 0.5, 0.75, 0.5]);
    const ly = ref('log_softmax', [f32([1, 2], [1000, 1000])], { axis: -1 });
    expectValues(ly, [-Math.LN2, -Math.LN2]);
  });

  it('rejects a bad axis or input', () => {
    expect(inferError('softmax', [['f32', [2, 3]]], { axis: 2 })).toBe('softmax: axis 2 is out of range for [2, 3]');
    expect(inferError('log_softmax', [['f32', [2, 3]]], { axis: -3 })).toBe('log_softmax: axis -3 is out of range for [2, 3]');
    expect(inferError('softmax', [['f32', []]], { axis: 0 })).toBe('softmax: x must have at least one axis, not a scalar');
    expect(inferError('softmax', [['i64', [4]]], { axis: 0 })).toBe('softmax: x must be f32, not i64[4]');
    expect(inferError('softmax', [['f32', [4]]], {})).toBe('softmax: missing attribute axis');
  });

  for (const [shape, axis] of [
    [[5], 0],
    [[2, 3, 4], 1],
    [[2, 3, 4], -1],
    [[3, 4], 0],
  ] as const) {
    it(`checks softmax and log_softmax on [${shape.join(', ')}] along ${axis}`, async () => {
      // tol 1e-5: some softmax gradients are ~5e-5, where the central difference at step 1e-6
      // carries ~2e-10 of float64 roundoff (4e-6 relative); at step 1e-5 the same element agrees to 2e-8.
      await checkOp({ op: 'softmax', inputs: [{ shape }], attrs: { axis }, seed: 3, tol: 1e-5 });
      await checkOp({ op: 'log_softmax', inputs: [{ shape }], attrs: { axis }, seed: 4 });
    });
  }
});

describe('layer_norm, rms_norm', () => {
  it('normalises by hand-computed statistics', () => {
    // [1, 2, 3]: mean 2, variance 2/3.
    const s = Math.sqrt(1.5);
    expectValues(ref('layer_norm', [f32([3], [1, 2, 3]), f32([3], [1, 1, 1]), f32([3], [0, 0, 0])], { eps: 0 }), [-s, 0, s]);
    expectValues(ref('layer_norm', [f32([3], [1, 2, 3]), f32([3], [2, 1, 1]), f32([3], [0, 5, 0])], { eps: 0 }), [-2 * s, 5, s]);
    // [3, 4]: mean square 12.5.
    const r = Math.sqrt(12.5);
    expectValues(ref('rms_norm', [f32([2], [3, 4]), f32([2], [1, 2])], { eps: 0 }), [3 / r, 8 / r]);
    expectValues(ref('rms_norm', [f32([1, 2], [3, 4]), f32([2], [1, 1])], { eps: 3.5 }), [3 / 4, 1]);
  });

  it('rejects parameters that do not match the last axis', () => {
    expect(inferError('layer_norm', [['f32', [2, 3, 4]], ['f32', [8]], ['f32', [4]]], { eps: 1e-5 })).toBe('layer_norm: weight [8] must match the last axis of x [2, 3, 4]');
    expect(inferError('layer_norm', [['f32', [2, 3, 4]], ['f32', [4]], ['f32', [1, 4]]], { eps: 1e-5 })).toBe('layer_norm: bias [1, 4] must match the last axis of x [2, 3, 4]');
    expect(inferError('rms_norm', [['f32', [2, 6]], ['f32', [2]]], { eps: 1e-5 })).toBe('rms_norm: weight [2] must match the last axis of x [2, 6]');
    expect(inferError('rms_norm', [['f32', [2, 6]]], { eps: 1e-5 })).toBe('rms_norm: expects 2 inputs, got 1');
    expect(inferError('rms_norm', [['f32', [2, 6]], ['f32', [6]]], { eps: -1 })).toBe('rms_norm: eps must be non-negative, not -1');
  });

  for (const [shape, eps] of [
    [[2, 3, 8], 1e-5],
    [[4, 6], 1e-2],
    [[5], 0],
  ] as const) {
    const d = shape[shape.length - 1]!;
    it(`checks layer_norm on [${shape.join(', ')}], eps ${eps}`, async () => {
      await checkOp({ op: 'layer_norm', inputs: [{ shape }, { shape: [d] }, { shape: [d] }], attrs: { eps }, seed: 5 });
    });
    it(`checks rms_norm on [${shape.join(', ')}], eps ${eps}`, async () => {
      await checkOp({ op: 'rms_norm', inputs: [{ shape }, { shape: [d] }], attrs: { eps }, seed: 6 });
    });
  }
});

describe('rope', () => {
  it('is the identity at t = 0 and a rotation by t·θ after', () => {
    // [T = 2, D = 2]: θ_0 = 1 for every base, so position 1 rotates (x1, x2) by one radian.
    for (const base of [10000, 2, 0.5]) {
      const y = ref('rope', [f32([2, 2], [0.3, -0.7, 2, 5])], { base, inverse: false });
      expectValues(y, [0.3, -0.7, 2 * Math.cos(1) - 5 * Math.sin(1), 5 * Math.cos(1) + 2 * Math.sin(1)]);
      const back = ref('rope', [f32([2, 2], [0.3, -0.7, 2, 5])], { base, inverse: true });
      expectValues(back, [0.3, -0.7, 2 * Math.cos(1) + 5 * Math.sin(1), 5 * Math.cos(1) - 2 * Math.sin(1)]);
    }
    // D = 4, base 100: θ = [1, 0.1]; pairs (x0, x2) and (x1, x3) at position 2 turn by 2 and 0.2 radians.
    const y = ref('rope', [f32([3, 4], [...Array(8).fill(0), 1, 2, 3, 4])], { base: 100, inverse: false });
    expectValues(f32([8], Array.from(y.data.slice(0, 8))), Array(8).fill(0));
    const [c1, s1, c2, s2] = [Math.cos(2), Math.sin(2), Math.cos(0.2), Math.sin(0.2)];
    expectValues(f32([4], Array.from(y.data.slice(8))), [1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2]);
  });

  it('inverse undoes the rotation', () => {
    const x = f32([2, 3, 4], Array.from({ length: 24 }, (_, i) => Math.sin(i + 1)));
    const there = ref('rope', [x], { base: 10000, inverse: false });
    expectValues(ref('rope', [there], { base: 10000, inverse: true }), Array.from(x.data));
  });

  it('rejects an odd last axis and a bad base', () => {
    expect(inferError('rope', [['f32', [2, 4, 5]]], { base: 10000, inverse: false })).toBe('rope: the last axis of x [2, 4, 5] must be even and non-zero');
    expect(inferError('rope', [['f32', [6]]], { base: 10000, inverse: false })).toBe('rope: x [6] must have at least two axes [..., T, D]');
    expect(inferError('rope', [['f32', [3, 6]]], { base: 0, inverse: false })).toBe('rope: base must be positive, not 0');
    expect(inferError('rope', [['f32', [3, 6]]], { base: 10, inverse: 1 })).toBe('rope: attribute inverse must be a boolean');
  });

  for (const [shape, base, inverse] of [
    [[2, 5, 8], 10000, false],
    [[3, 2, 4, 6], 100, true],
    [[7, 2], 10, false],
  ] as const) {
    it(`checks rope on [${shape.join(', ')}], base ${base}${inverse ? ', inverse' : ''}`, async () => {
      await checkOp({ op: 'rope', inputs: [{ shape }], attrs: { base, inverse }, seed: 7 });
    });
  }
});

describe('dropout', () => {
  const n = 20000;
  const keptMask = (seed: number, p: number, salt = 0): number[] =>
    Array.from(ref('dropout', [f32([n], Array(n).fill(1)), i64([], [seed])], { p, salt }).data, (v) => (v === 0 ? 0 : 1));
  const correlation = (a: readonly number[], b: readonly number[]): number => {
    const mean = (v: readonly number[]): number => v.reduce((s, x) => s + x, 0) / v.length;
    const [ma, mb] = [mean(a), mean(b)];
    let cov = 0;
    let va = 0;
    let vb = 0;
    for (let i = 0; i < a.length; i++) {
      cov += (a[i]! - ma) * (b[i]! - mb);
      va += (a[i]! - ma) ** 2;
      vb += (b[i]! - mb) ** 2;
    }
    return cov / Math.sqrt(va * vb);
  };

  for (const p of [0.1, 0.3, 0.5, 0.9]) {
    it(`keeps about 1 − p of the elements, uncorrelated, for p = ${p}`, () => {
      for (const seed of [0, 1, 12345, -7, 2 ** 40]) {
        const mask = keptMask(seed, p);
        const kept = mask.reduce((s, m) => s + m, 0) / n;
        expect(Math.abs(kept - (1 - p)), `seed ${seed}: kept ${kept}`).toBeLessThan(0.02);
        expect(Math.abs(correlation(mask.slice(0, -1), mask.slice(1))), `seed ${seed}: lag-1`).toBeLessThan(0.05);
        // Neighbouring seeds (consecutive steps) give unrelated masks too.
        expect(Math.abs(correlation(mask, keptMask(seed + 1, p))), `seeds ${seed}, ${seed + 1}`).toBeLessThan(0.05);
      }
    });
  }

  it('gives the same mask for the same seed and a different one for another seed or salt', () => {
    expect(keptMask(42, 0.5)).toEqual(keptMask(42, 0.5));
    expect(keptMask(42, 0.5)).not.toEqual(keptMask(43, 0.5));
    expect(keptMask(42, 0.5)).not.toEqual(keptMask(42, 0.5, 1));
  });

  it('scales kept elements by 1 / (1 − p) and is the identity at p = 0', () => {
    const x = f32([3, 4], Array.from({ length: 12 }, (_, i) => i - 5.5));
    const y = ref('dropout', [x, i64([], [9])], { p: 0.25 });
    y.data.forEach((v, i) => expect(v === 0 || Math.abs(v - x.data[i]! / 0.75) < 1e-12).toBe(true));
    expect(Array.from(ref('dropout', [x, i64([], [9])], { p: 0 }).data)).toEqual(Array.from(x.data));
  });

  it('computes exactly the same mask in ONNX as the reference', async () => {
    for (const [shape, seed, p, salt] of [
      [[n], 3, 0.3, 0],
      [[40, 500], 2 ** 40 + 17, 0.1, 0],
      [[8, 25, 100], -123456789, 0.5, 7],
      [[10], 0, 0.99, -3],
    ] as const) {
      const size = shape.reduce((a, b) => a * b, 1);
      const { onnx, reference } = await both('dropout', [f32(shape, Array(size).fill(1)), i64([], [seed])], { p, salt });
      const dropped = (t: Tensor): number[] => Array.from(t.data, (v) => (v === 0 ? 1 : 0));
      expect(dropped(onnx), `seed ${seed}`).toEqual(dropped(reference));
      expect(Math.max(...Array.from(onnx.data, (v, i) => Math.abs(v - reference.data[i]!)))).toBeLessThan(1e-5 / (1 - p));
    }
  });

  it('hashes to [0, 2^31 − 1)', () => {
    const h = dropoutHash(5, 0, 1000);
    for (const v of h) expect(Number.isInteger(v) && v >= 0 && v < 2 ** 31 - 1).toBe(true);
  });

  it('rejects a bad seed or p', () => {
    expect(inferError('dropout', [['f32', [4]], ['i64', [1]]], { p: 0.1 })).toBe('dropout: seed must be an i64 scalar, not i64[1]');
    expect(inferError('dropout', [['f32', [4]], ['f32', []]], { p: 0.1 })).toBe('dropout: seed must be an i64 scalar, not f32[]');
    expect(inferError('dropout', [['f32', [4]], ['i64', []]], { p: 1 })).toBe('dropout: p must be in [0, 1), not 1');
    expect(inferError('dropout', [['f32', [4]], ['i64', []]], { p: 0.1, salt: 0.5 })).toBe('dropout: attribute salt must be an integer, not 0.5');
  });

  for (const [shape, p] of [
    [[4, 16], 0.3],
    [[2, 3, 5], 0.5],
    [[6], 0],
  ] as const) {
    it(`checks dropout on [${shape.join(', ')}], p ${p}`, async () => {
      await checkOp({ op: 'dropout', inputs: [{ shape }, { shape: [], fill: { ints: 1000 } }], attrs: { p }, seed: 8 });
    });
  }
});

describe('cross_entropy', () => {
  it('computes a two-class example by hand', () => {
    // Row 0: softmax [0.25, 0.75], target 1 → −ln 0.75. Row 1: softmax [0.75, 0.25], target 1 → −ln 0.25. Row 2 ignored.
    const logits = f32([3, 2], [0, Math.log(3), Math.log(3), 0, 50, -50]);
    const loss = ref('cross_entropy', [logits, i64([3], [1, 1, -100])], { ignore_index: -100 });
    expectValues(loss, [-(Math.log(0.75) + Math.log(0.25)) / 2]);
    const one = ref('cross_entropy', [f32([2], [0, Math.log(3)]), i64([], [0])], { ignore_index: -1 });
    expectValues(one, [Math.log(4)]);
  });

  it('gives NaN (0 / 0), with a NaN gradient, when every target is ignored, as onnxruntime does', async () => {
    const logits = f32([2, 3], [0.1, 0.2, 0.3, -1, 0, 1]);
    const targets = i64([2], [-100, -100]);
    const { onnx, reference } = await both('cross_entropy', [logits, targets], { ignore_index: -100 });
    expect(Number.isNaN(reference.data[0])).toBe(true);
    expect(Number.isNaN(onnx.data[0])).toBe(true);
    const { graph } = buildGradientGraph('ce_all_ignored', (b) => {
      const l = b.input('l', 'f32', [2, 3]);
      const t = b.input('t', 'i64', [2]);
      return { loss: b.crossEntropy(l, t, -100), wrt: [l] };
    });
    const feeds = new Map([
      ['l', logits],
      ['t', targets],
    ]);
    const refGrad = evaluateGraph(graph, feeds).get('grad:l')!;
    const onnxGrad = (await runOnce(emitModel(graph).bytes, feeds)).get('grad:l')!;
    expect(Array.from(refGrad.data).every(Number.isNaN)).toBe(true);
    expect(Array.from(onnxGrad.data).every(Number.isNaN)).toBe(true);
  });

  it('rejects mismatched targets and out-of-range target values', () => {
    expect(inferError('cross_entropy', [['f32', [2, 3, 5]], ['i64', [2, 4]]], { ignore_index: -100 })).toBe('cross_entropy: targets [2, 4] must match the leading axes of logits [2, 3, 5]');
    expect(inferError('cross_entropy', [['f32', [2, 5]], ['f32', [2]]], { ignore_index: -100 })).toBe('cross_entropy: targets must be i64, not f32[2]');
    expect(inferError('cross_entropy', [['f32', [2, 5]], ['i64', [2]]], {})).toBe('cross_entropy: missing attribute ignore_index');
    expect(() => ref('cross_entropy', [f32([1, 2], [0, 0]), i64([1], [2])], { ignore_index: -100 })).toThrow(
      'cross_entropy: target 2 at position 0 is outside [0, 2) and not the ignore_index -100',
    );
  });

  it('checks cross_entropy on [2, 3, 5]', async () => {
    await checkOp({ op: 'cross_entropy', inputs: [{ shape: [2, 3, 5] }, { shape: [2, 3], fill: { ints: 5 } }], attrs: { ignore_index: -100 }, seed: 9 });
  });

  it('checks cross_entropy with ignored targets', async () => {
    await checkOp({
      op: 'cross_entropy',
      inputs: [{ shape: [2, 4, 6] }, { shape: [2, 4], dtype: 'i64', fill: [3, -100, 0, 5, -100, -100, 1, 5] }],
      attrs: { ignore_index: -100 },
      seed: 10,
    });
    // An ignore_index inside [−V, V): ONNX OneHot would wrap it, the gradient must not pick it up.
    await checkOp({ op: 'cross_entropy', inputs: [{ shape: [5, 3] }, { shape: [5], dtype: 'i64', fill: [2, -1, 0, -1, 1] }], attrs: { ignore_index: -1 }, seed: 11 });
  });

  it('checks cross_entropy on a single position', async () => {
    await checkOp({ op: 'cross_entropy', inputs: [{ shape: [7] }, { shape: [], fill: { ints: 7 } }], attrs: { ignore_index: -100 }, seed: 12 });
  });
});
