/**
 * Quantization: int8 quantize / dequantize with ONNX QuantizeLinear-13 and
 * DequantizeLinear-13 semantics (symmetric: the zero point is always 0), and
 * `fake_quant`, the pair in one op, which quantization-aware training puts in
 * the forward pass.
 *
 * The scale is a scalar (per-tensor) or a 1-D tensor with one scale per slice
 * along `axis` (per-channel: a MatMul weight [in, out] is quantized per output
 * column, axis 1, as onnxruntime's QDQ quantizer and TensorRT do). Quantizing
 * is q = saturate(round_half_even(x / scale)) into [-128, 127]; dequantizing is
 * q · scale.
 *
 * `fake_quant`'s gradient is the straight-through estimator: the gradient of x
 * passes where x / scale rounds into the int8 range and is zero where it is
 * clipped (as PyTorch's fake_quantize_per_tensor_affine); the gradient of the
 * scale is LSQ's (Esser et al., 2020): (y − x) / s where x is inside the
 * range, y / s (= −128 or 127) where it is clipped — so a learned scale
 * trades rounding error against clipping error.
 */
import type { Attrs, Node, Value, ValueType } from '../graph.js';
import type { OpDef, LoweringContext } from '../op.js';
import type { OpBuilder } from '../opBuilder.js';
import { formatShapeList as fmt, sizeOf, stridesOf, type Tensor } from '../tensor.js';
import { describe, expectArity, expectDtype, intAttr, normalizeAxis, opError, tensorOf } from './common.js';

/** The int8 range every op here saturates to (ONNX QuantizeLinear with an int8 zero point). */
export const INT8_MIN = -128;
export const INT8_MAX = 127;

/** Round half to even, as ONNX QuantizeLinear rounds. */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** x / scale rounded and saturated to int8. */
export function quantizeValue(x: number, scale: number): number {
  return Math.min(INT8_MAX, Math.max(INT8_MIN, roundHalfEven(x / scale)));
}

/** The axis a per-channel scale runs along (non-negative), or null for a per-tensor (scalar) scale. */
function scaleAxis(op: string, x: ValueType, scale: ValueType, attrs: Attrs): number | null {
  expectDtype(op, scale, ['f32'], 'scale');
  if (scale.shape.length === 0) return null;
  if (scale.shape.length !== 1) throw opError(op, `scale must be a scalar (per-tensor) or 1-D (per-channel), got ${describe(scale)}`);
  if (attrs['axis'] === undefined) throw opError(op, `a per-channel scale ${fmt(scale.shape)} needs the attribute axis`);
  const axis = normalizeAxis(op, intAttr(op, attrs, 'axis'), x.shape.length, x.shape);
  if (x.shape[axis] !== scale.shape[0]) {
    throw opError(op, `scale has ${scale.shape[0]} values but axis ${axis} of the input ${fmt(x.shape)} has ${x.shape[axis]}`);
  }
  return axis;
}

/** For each element of a tensor of `shape`, the index of its scale (0 for a per-tensor scale). */
function scaleIndex(shape: readonly number[], axis: number | null): (flat: number) => number {
  if (axis === null) return () => 0;
  const stride = stridesOf(shape)[axis]!;
  const size = shape[axis]!;
  return (flat) => Math.floor(flat / stride) % size;
}

function axisOf(node: Node): number | null {
  return scaleAxis(node.op, node.inputs[0]!, node.inputs[1]!, node.attrs);
}

/** Emits an ONNX QuantizeLinear (or DequantizeLinear) with an int8 zero point of the scale's shape. */
function emitQdq(ctx: LoweringContext, opType: 'QuantizeLinear' | 'DequantizeLinear', x: string, scale: string, scaleShape: readonly number[], axis: number | null, out: readonly string[] | number): string[] {
  // The zero point's type makes QuantizeLinear produce int8 (without one it would be uint8).
  const zeroPoint = ctx.constInt8(new Array<number>(sizeOf(scaleShape)).fill(0), scaleShape);
  return ctx.emit(opType, [x, scale, zeroPoint], out, axis === null ? {} : { axis: { i: axis } });
}

function checkPair(op: string, inputs: readonly ValueType[], attrs: Attrs, input: 'f32' | 'i8'): ValueType {
  expectArity(op, inputs, 2);
  const [x, scale] = inputs as [ValueType, ValueType];
  expectDtype(op, x, [input]);
  scaleAxis(op, x, scale, attrs);
  return x;
}

function elementwise(x: Tensor, scale: Tensor, axis: number | null, dtype: 'f32' | 'i8', f: (v: number, s: number) => number): Tensor {
  const at = scaleIndex(x.shape, axis);
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(x.data[i]!, scale.data[at(i)]!);
  return tensorOf(dtype, x.shape, out);
}

/** quantize_linear and dequantize_linear: one ONNX op each, elementwise with the scale of each element's channel. */
function qdqOp(name: string, doc: string, onnxOp: 'QuantizeLinear' | 'DequantizeLinear', from: 'f32' | 'i8', to: 'f32' | 'i8', f: (v: number, s: number) => number): OpDef {
  return {
    name,
    doc,
    infer(inputs, attrs) {
      return [{ dtype: to, shape: checkPair(name, inputs, attrs, from).shape }];
    },
    evaluate([x, scale], attrs) {
      return [elementwise(x!, scale!, scaleAxis(name, x!, scale!, attrs), to, f)];
    },
    lower(ctx, node) {
      emitQdq(ctx, onnxOp, ctx.input(node, 0), ctx.input(node, 1), node.inputs[1]!.shape, axisOf(node), [ctx.output(node, 0)]);
    },
  };
}

const QUANTIZE_LINEAR = qdqOp(
  'quantize_linear',
  'x / scale rounded half to even and saturated to int8 (ONNX QuantizeLinear, zero point 0); scale scalar or per-channel along `axis`',
  'QuantizeLinear',
  'f32',
  'i8',
  quantizeValue,
);

const DEQUANTIZE_LINEAR = qdqOp('dequantize_linear', 'int8 q · scale (ONNX DequantizeLinear, zero point 0); scale scalar or per-channel along `axis`', 'DequantizeLinear', 'i8', 'f32', (v, s) => v * s);

/** The scale shaped to broadcast against x: [1, …, C, …, 1] with C on `axis` (a scalar stays a scalar). */
function broadcastScale(b: OpBuilder, x: Value, scale: Value, axis: number | null): Value {
  if (axis === null) return scale;
  return b.reshape(scale, x.shape.map((d, i) => (i === axis ? d : 1)));
}

const FAKE_QUANT: OpDef = {
  name: 'fake_quant',
  doc: 'dequantize_linear(quantize_linear(x, scale), scale): int8 rounding and clipping in float; straight-through gradient for x, LSQ gradient for scale',
  infer(inputs, attrs) {
    const x = checkPair('fake_quant', inputs, attrs, 'f32');
    return [{ dtype: 'f32', shape: x.shape }];
  },
  evaluate([x, scale], attrs) {
    return [elementwise(x!, scale!, scaleAxis('fake_quant', x!, scale!, attrs), 'f32', (v, s) => quantizeValue(v, s) * s)];
  },
  lower(ctx, node) {
    const axis = axisOf(node);
    const shape = node.inputs[1]!.shape;
    const [q] = emitQdq(ctx, 'QuantizeLinear', ctx.input(node, 0), ctx.input(node, 1), shape, axis, 1);
    emitQdq(ctx, 'DequantizeLinear', q!, ctx.input(node, 1), shape, axis, [ctx.output(node, 0)]);
  },
  grad(b, node, [g]) {
    if (!g) return [null, null];
    const [x, scale] = node.inputs as [Value, Value];
    const y = node.outputs[0]!;
    const axis = axisOf(node);
    const s = broadcastScale(b, x, scale, axis);
    // Inside: x / s rounds to a value in [-128, 127] (ties at the edges round to even: -128.5 → -128 in, 127.5 → 128 out).
    const q = b.div(x, s);
    const inside = b.and(b.not(b.less(q, b.scalar(INT8_MIN - 0.5))), b.less(q, b.scalar(INT8_MAX + 0.5)));
    const gx = b.where(inside, g, b.scalar(0));
    const ys = b.div(y, s);
    const perElement = b.mul(g, b.where(inside, b.sub(ys, q), ys));
    const gs = axis === null ? (x.shape.length ? b.reduceSum(perElement, x.shape.map((_, i) => i)) : perElement) : b.reshape(b.sumToShape(perElement, x.shape.map((d, i) => (i === axis ? d : 1))), scale.shape);
    return [gx, gs];
  },
};

/**
 * The smallest |x| maximum a scale is computed from: an all-zero channel (a zero-initialised
 * LoRA matrix, a pruned column) still gets a positive scale, as ONNX and TensorRT require.
 */
export const MIN_ABSMAX = 1e-30;

/** The axes of a rank-`rank` tensor other than `axis` (all of them for null). */
function otherAxes(rank: number, axis: number | null): number[] {
  return [...Array(rank).keys()].filter((a) => a !== axis);
}

function absmaxAxis(x: ValueType, attrs: Attrs): number | null {
  if (attrs['axis'] === undefined) return null;
  return normalizeAxis('absmax_scale', intAttr('absmax_scale', attrs, 'axis'), x.shape.length, x.shape);
}

const ABSMAX_SCALE: OpDef = {
  name: 'absmax_scale',
  doc: 'the symmetric int8 scale max(|x|) / 127, per channel along `axis` (one per slice) or per tensor; an observer: no gradient',
  infer(inputs, attrs) {
    expectArity('absmax_scale', inputs, 1);
    const x = inputs[0]!;
    expectDtype('absmax_scale', x, ['f32']);
    const axis = absmaxAxis(x, attrs);
    return [{ dtype: 'f32', shape: axis === null ? [] : [x.shape[axis]!] }];
  },
  evaluate([x], attrs) {
    const axis = absmaxAxis(x!, attrs);
    const at = scaleIndex(x!.shape, axis);
    const out = new Float64Array(axis === null ? 1 : x!.shape[axis]!).fill(MIN_ABSMAX);
    for (let i = 0; i < x!.data.length; i++) out[at(i)] = Math.max(out[at(i)]!, Math.abs(x!.data[i]!));
    return [tensorOf('f32', axis === null ? [] : [out.length], out.map((m) => m / INT8_MAX))];
  },
  lower(ctx, node) {
    const x = node.inputs[0]!;
    const axes = otherAxes(x.shape.length, absmaxAxis(x, node.attrs));
    const [abs] = ctx.emit('Abs', [ctx.input(node, 0)], 1);
    const [max] = axes.length ? ctx.emit('ReduceMax', [abs!], 1, { axes: { ints: axes }, keepdims: { i: 0 } }) : [abs];
    const [floored] = ctx.emit('Max', [max!, ctx.constFloat([MIN_ABSMAX], [])], 1);
    ctx.emit('Div', [floored!, ctx.constFloat([INT8_MAX], [])], [ctx.output(node, 0)]);
  },
  // An observer: the range it reports is not trained through (as PyTorch's observers run without gradients).
  grad: () => [null],
};

export const QUANT_OPS: readonly OpDef[] = [QUANTIZE_LINEAR, DEQUANTIZE_LINEAR, FAKE_QUANT, ABSMAX_SCALE];
