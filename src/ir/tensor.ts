/**
 * Reference tensors: the values the IR's reference evaluator computes with.
 * Every dtype is held in a Float64Array (integers and booleans exactly, as
 * 0/1; f16 and bf16 as the values they represent), so gradcheck can run the
 * whole graph in float64 and compare with the float32 ONNX run.
 */
import { fromBf16Bits, fromF16Bits, toBf16Bits, toF16Bits } from './floatBits.js';

/** Element types: floats (f32; f16 and bf16 for storage, export and quantization), integers, bool. */
export type DType = 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i8' | 'u8' | 'bool';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i64', 'i32', 'i8', 'u8', 'bool'];
export const FLOAT_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16'];
export const INT_DTYPES: readonly DType[] = ['i64', 'i32', 'i8', 'u8'];

/** Bytes per element, and the element type number ONNX's TensorProto gives each dtype. */
export const DTYPE_INFO: Readonly<Record<DType, { readonly bytes: number; readonly onnx: number }>> = {
  f32: { bytes: 4, onnx: 1 },
  f16: { bytes: 2, onnx: 10 },
  bf16: { bytes: 2, onnx: 16 },
  i64: { bytes: 8, onnx: 7 },
  i32: { bytes: 4, onnx: 6 },
  i8: { bytes: 1, onnx: 3 },
  u8: { bytes: 1, onnx: 2 },
  bool: { bytes: 1, onnx: 9 },
};

/**
 * How a number becomes an element of `dtype` (the semantics of `cast`, as in
 * ONNX): f16 and bf16 round to nearest even (via f32); integers truncate toward
 * zero and wrap in two's complement (i32, i8, u8); bool is x ≠ 0. f32 is the
 * identity: the reference evaluator computes f32 values in float64.
 */
export function castValue(dtype: DType): (x: number) => number {
  switch (dtype) {
    case 'f32':
      return (x) => x;
    case 'f16':
      return (x) => fromF16Bits(toF16Bits(x));
    case 'bf16':
      return (x) => fromBf16Bits(toBf16Bits(x));
    case 'i64':
      return Math.trunc;
    case 'i32':
      return (x) => (Number.isFinite(x) ? Math.trunc(x) | 0 : 0);
    case 'i8':
      return (x) => (Number.isFinite(x) ? (Math.trunc(x) << 24) >> 24 : 0);
    case 'u8':
      return (x) => (Number.isFinite(x) ? Math.trunc(x) & 0xff : 0);
    case 'bool':
      return (x) => (x !== 0 ? 1 : 0);
  }
}

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function makeTensor(dtype: DType, shape: readonly number[], data?: ArrayLike<number>): Tensor {
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new Error(`tensor data has ${data.length} values, shape [${shape.join(', ')}] needs ${n}`);
    out.set(data);
  }
  return { dtype, shape: [...shape], data: out };
}

export function formatShapeList(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** NumPy broadcasting of two shapes; null when they do not broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * For each flat index of `outShape`, the flat index of the element of a tensor of
 * shape `inShape` that broadcasting reads there.
 */
export function broadcastIndex(inShape: readonly number[], outShape: readonly number[]): Int32Array {
  const n = sizeOf(outShape);
  const map = new Int32Array(n);
  const inStrides = stridesOf(inShape);
  const offset = outShape.length - inShape.length;
  const coord = new Array<number>(outShape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    let src = 0;
    for (let d = 0; d < inShape.length; d++) {
      if (inShape[d] !== 1) src += coord[d + offset]! * inStrides[d]!;
    }
    map[flat] = src;
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++coord[d]! < outShape[d]!) break;
      coord[d] = 0;
    }
  }
  return map;
}
