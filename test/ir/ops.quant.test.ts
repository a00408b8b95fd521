/**
 * The quantization ops: quantize_linear, dequantize_linear and fake_quant
 * against hand-computed values and onnxruntime's QuantizeLinear /
 * DequantizeLinear; fake_quant's straight-through and LSQ gradients against
 * hand-computed values and finite differences of the surrogate they are the
 * derivative of.
 */
import { describe, expect, it } from 'vitest';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import { buildGradientGraph } from '../../src/ir/gradcheck.js';
import { quantizeValue, roundHalfEven } from '../../src/ir/ops/quant.js';
import type { Attrs } from '../../src/ir/graph.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import { runOnce } from '../../src/runtime/ort.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { checkOp, evalOp, inferError } from './opcheck.js';

const f32 = (shape: readonly number[], data: readonly number[]): Tensor => makeTensor('f32', shape, data);

describe('quantize_linear, dequantize_linear', () => {
  it('rounds half to even and saturates to [-128, 127]', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -2.5001].map((v) => roundHalfEven(v) + 0)).toEqual([0, 2, 2, 0, -2, -2, 2, -3]);
    const q = evalOp('quantize_linear', [f32([6], [0.25, 0.75, -0.25, 100, -100, 1.26]), f32([], [0.5])]);
    expect([...q.data].map((v) => v + 0)).toEqual([0, 2, 0, 127, -128, 3]);
    expect(q.dtype).toBe('i8');
    const x = evalOp('dequantize_linear', [makeTensor('i8', [3], [-128, 0, 127]), f32([], [0.5])]);
    expect([...x.data]).toEqual([-64, 0, 63.5]);
  });

  it('quantizes per channel along the given axis', () => {
    // Columns of a [2, 3] weight, scales 1, 0.1, 0.01.
    const q = evalOp('quantize_linear', [f32([2, 3], [1, 1, 1, -2, -0.2, 0.05]), f32([3], [1, 0.1, 0.01])], { axis: 1 });
    expect([...q.data]).toEqual([1, 10, 100, -2, -2, 5]);
    // Rows, scales 1 and 0.1: 0.05 / 0.1 = 0.5 rounds to the even 0.
    const rows = evalOp('quantize_linear', [f32([2, 3], [1, 1, 1, -2, -0.2, 0.05]), f32([2], [1, 0.1])], { axis: 0 });
    expect([...rows.data].map((v) => v + 0)).toEqual([1, 1, 1, -20, -2, 0]);
  });

  it('names the mistake in a bad type', () => {
    expect(inferError('quantize_linear', [{ dtype: 'f32', shape: [2, 3] }, { dtype: 'f32', shape: [3] }])).toBe('quantize_linear: a per-channel scale [3] needs the attribute axis');
    expect(inferError('quantize_linear', [{ dtype: 'f32', shape: [2, 3] }, { dtype: 'f32', shape: [2] }], { axis: 1 })).toBe('quantize_linear: scale has 2 values but axis 1 of the input [2, 3] has 3');
    expect(inferError('dequantize_linear', [{ dtype: 'f32', shape: [2] }, { dtype: 'f32', shape: [] }])).toBe('dequantize_linear: input must be i8, got f32[2]');
    expect(inferError('fake_quant', [{ dtype: 'f32', shape: [2] }, { dtype: 'f32', shape: [1, 1] }])).toBe('fake_quant: scale must be a scalar (per-tensor) or 1-D (per-channel), got f32[1, 1]');
  });

  // onnxruntime divides in float32; the values here stay away from rounding ties.
  it.each<{ name: string; shape: number[]; scale: { shape: number[]; fill: number[] }; attrs: Attrs }>([
    { name: 'per tensor', shape: [4, 5], scale: { shape: [], fill: [0.02] }, attrs: {} },
    { name: 'per channel', shape: [4, 5], scale: { shape: [5], fill: [0.01, 0.02, 0.03, 0.005, 0.1] }, attrs: { axis: 1 } },
  ])('runs in onnxruntime as the reference says ($name)', async ({ shape, scale, attrs }) => {
    for (const op of ['quantize_linear', 'fake_quant']) {
      await checkOp({ op, inputs: [{ shape, grad: false }, { shape: scale.shape, fill: scale.fill, grad: false }], attrs, ortTol: 1e-6 });
    }
    await checkOp({ op: 'dequantize_linear', inputs: [{ shape, dtype: 'i8', fill: { ints: 100 } }, { shape: scale.shape, fill: scale.fill, grad: false }], attrs, ortTol: 1e-6 });
  });
});

describe('absmax_scale', () => {
  it('is max |x| / 127 per tensor or per channel, and positive for an all-zero channel', async () => {
    expect([...evalOp('absmax_scale', [f32([2, 3], [1, -2.54, 0, -0.5, 1, 0])]).data]).toEqual([2.54 / 127]);
    const perColumn = evalOp('absmax_scale', [f32([2, 3], [1, -2.54, 0, -0.5, 1, 0])], { axis: 1 });
    expect(perColumn.shape).toEqual([3]);
    expect([...perColumn.data]).toEqual([1 / 127, 2.54 / 127, 1e-30 / 127]);
    for (const attrs of [{}, { axis: 1 }, { axis: -2 }] as Attrs[]) await checkOp({ op: 'absmax_scale', inputs: [{ shape: [4, 5], grad: false }], attrs, ortTol: 1e-7 });
  });
});

describe('fake_quant gradients', () => {
  /** d loss / d x and d loss / d scale of sum(w · fake_quant(x, scale)), by the reference evaluator. */
  function grads(x: Tensor, scale: Tensor, w: Tensor, attrs: Record<string, number> = {}): { gx: Tensor; gs: Tensor } {
    const { graph } = buildGradientGraph('fq_grad', (b) => {
      const xv = b.input('x', 'f32', x.shape);
      const sv = b.input('s', 'f32', scale.shape);
      const y = b.one('fake_quant', [xv, sv], attrs);
      const loss = b.reduceSum(b.mul(y, b.constant(w)), x.shape.map((_, i) => i));
      return { loss, wrt: [xv, sv] };
    });
    const feeds = new Map([
      ['x', x],
      ['s', scale],
    ]);
    const out = evaluateGraph(graph, feeds);
    const [gx, gs] = [out.get('grad:x')!, out.get('grad:s')!];
    return { gx: gx!, gs: gs! };
  }

  it('passes the gradient of x straight through inside the range and stops it where x is clipped', () => {
    // Scale 0.1: the int8 range is [-12.85, 12.75) in x.
    const x = f32([6], [0.03, -5, 12.7, 12.8, -12.8, -13]);
    const { gx } = grads(x, f32([], [0.1]), f32([6], [1, 2, 3, 4, 5, 6]));
    expect([...gx.data].map((v) => v + 0)).toEqual([1, 2, 3, 0, 5, 0]);
  });

  it('gives the scale the LSQ gradient: (y - x) / s inside, the clip bound outside', () => {
    const x = f32([3], [0.26, 20, -20]);
    const { gs } = grads(x, f32([], [0.1]), f32([3], [1, 1, 2]));
    // 0.26 → y = 0.3: (0.3 - 0.26) / 0.1 = 0.4; 20 clips to 127; -20 clips to -128, weighted 2.
    expect(gs.data[0]!).toBeCloseTo(0.4 + 127 - 256, 10);
  });

  it('matches finite differences of the straight-through surrogate, per tensor and per channel', () => {
    // The estimator is the exact derivative of s · clip(x / s + c, -128, 127) with the rounding
    // offset c = round(x / s₀) − x / s₀ held fixed (for x: clip(x / s + c) is x / s + c inside the range).
    const x = f32([3, 4], [0.31, -0.77, 1.23, 5.2, -0.04, 0.49, -6.1, 0.15, 2.02, -1.11, 0.66, -0.29]);
    const w = f32([3, 4], [0.5, -1, 2, 1, 1.5, -0.5, 1, 3, -2, 0.25, 1, -1]);
    for (const [scale, axis] of [[f32([], [0.02]), null], [f32([4], [0.02, 0.01, 0.03, 0.05]), 1]] as const) {
      const { gx, gs } = grads(x, scale, w, axis === null ? {} : { axis });
      const sOf = (i: number): number => scale.data[axis === null ? 0 : i % 4]!;
      const surrogate = (i: number, xi: number, s: number): number => {
        const s0 = sOf(i);
        const c = roundHalfEven(x.data[i]! / s0) - x.data[i]! / s0;
        return s * Math.min(127, Math.max(-128, xi / s + c));
      };
      const h = 1e-6;
      const numericS = new Float64Array(scale.data.length);
      for (let i = 0; i < x.data.length; i++) {
        const xi = x.data[i]!;
        const s = sOf(i);
        const dx = (surrogate(i, xi + h, s) - surrogate(i, xi - h, s)) / (2 * h);
        expect(gx.data[i]!, `d/dx[${i}]`).toBeCloseTo(w.data[i]! * dx, 6);
        numericS[axis === null ? 0 : i % 4]! += (w.data[i]! * (surrogate(i, xi, s + h) - surrogate(i, xi, s - h))) / (2 * h);
        // The forward value is the surrogate's at s₀.
        expect(quantizeValue(xi, s) * s).toBeCloseTo(surrogate(i, xi, s), 12);
      }
      numericS.forEach((n, c) => expect(gs.data[c]!, `d/ds[${c}]`).toBeCloseTo(n, 5));
    }
  });

  it('lowers its gradient graph to ONNX that onnxruntime runs as the reference does', async () => {
    const { graph } = buildGradientGraph('fq_grad', (b) => {
      const xv = b.input('x', 'f32', [2, 3]);
      const sv = b.input('s', 'f32', [3]);
      const loss = b.reduceSum(b.mul(b.one('fake_quant', [xv, sv], { axis: 1 }), b.scalar(3)), [0, 1]);
      return { loss, wrt: [xv, sv] };
    });
    const feeds = new Map([
      ['x', f32([2, 3], [0.11, -3, 0.52, 40, 0.2, -0.07])],
      ['s', f32([3], [0.1, 0.02, 0.05])],
    ]);
    const reference = evaluateGraph(graph, feeds);
    const onnx = await runOnce(emitModel(graph).bytes, feeds);
    for (const [name, ref] of reference) [...ref.data].forEach((v, i) => expect(onnx.get(name)!.data[i]!, `${name}[${i}]`).toBeCloseTo(v, 4));
  });
});
