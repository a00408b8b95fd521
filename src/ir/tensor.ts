/**
 * Reference tensors: the values the IR's reference evaluator computes with.
 * Every dtype is held in a Float64Array (integers and booleans exactly, as
 * 0/1), so gradcheck can run the whole graph in float64 and compare with the
 * float32 ONNX run.
 */
export type DType = 'f32' | 'i64' | 'bool';
export const DTYPES: readonly DType[] = ['f32', 'i64', 'bool'];

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
