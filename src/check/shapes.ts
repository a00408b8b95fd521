/**
 * Shape rules shared by the tensor primitives: broadcasting, matmul, axes,
 * reductions, slicing. Each returns a result or a `ShapeError` carrying a
 * diagnostic code and a message that names both shapes; callers attach spans.
 */
import {
  addDims,
  constDim,
  constValue,
  dimsEqual,
  divDims,
  formatDim,
  mulDims,
  subDims,
  type Dim,
} from './dims.js';
import { formatShape, type Shape } from './types.js';

export interface ShapeError {
  readonly error: true;
  readonly code: string;
  readonly message: string;
}

export const shapeError = (code: string, message: string): ShapeError => ({ error: true, code, message });

export function isShapeError(x: unknown): x is ShapeError {
  return typeof x === 'object' && x !== null && (x as ShapeError).error === true;
}

const isOne = (d: Dim): boolean => constValue(d) === 1;

/**
 * NumPy/ONNX broadcasting of two shapes, aligned on the right. Dimensions must
 * be provably equal, or one of them 1. An ellipsis on either side stands for
 * unknown leading dims and is carried into the result.
 */
export function broadcastShapes(a: Shape, b: Shape): Shape | ShapeError {
  const n = Math.max(a.dims.length, b.dims.length);
  const out: Dim[] = [];
  for (let i = 1; i <= n; i++) {
    const x = a.dims[a.dims.length - i];
    const y = b.dims[b.dims.length - i];
    if (x === undefined) out.push(y!);
    else if (y === undefined) out.push(x);
    else if (dimsEqual(x, y) || isOne(y)) out.push(x);
    else if (isOne(x)) out.push(y);
    else {
      return shapeError(
        'broadcast-shape',
        `shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast: dimension ${formatDim(x)} vs ${formatDim(y)}`,
      );
    }
  }
  return { ellipsis: a.ellipsis || b.ellipsis, dims: out.reverse() };
}

/**
 * Matrix product with NumPy semantics: `[..., n, k] @ [..., k, m] -> [..., n, m]`,
 * batch dims broadcast; a 1-D operand is a vector.
 */
export function matmulShape(a: Shape, b: Shape, names: () => readonly [string, string]): Shape | ShapeError {
  const describe = (): string => `${names()[0]} is ${formatShape(a)} but ${names()[1]} is ${formatShape(b)}`;
  if ((a.dims.length === 0 && !a.ellipsis) || (b.dims.length === 0 && !b.ellipsis) || a.dims.length === 0 || b.dims.length === 0) {
    return shapeError('matmul-shape', `matmul needs operands with at least one dimension: ${describe()}`);
  }
  const aVector = a.dims.length === 1 && !a.ellipsis;
  const bVector = b.dims.length === 1 && !b.ellipsis;
  const k1 = a.dims[a.dims.length - 1]!;
  const k2 = bVector ? b.dims[0]! : b.dims[b.dims.length - 2];
  if (k2 === undefined) {
    return shapeError('matmul-shape', `matmul: the right operand needs two dimensions or one: ${describe()}`);
  }
  if (!dimsEqual(k1, k2)) {
    return shapeError('matmul-shape', `matmul: inner dimensions differ (${formatDim(k1)} vs ${formatDim(k2)}): ${describe()}`);
  }
  const aBatch: Shape = { ellipsis: a.ellipsis, dims: aVector ? [] : a.dims.slice(0, -2) };
  const bBatch: Shape = { ellipsis: b.ellipsis, dims: bVector ? [] : b.dims.slice(0, -2) };
  const batch = broadcastShapes(aBatch, bBatch);
  if (isShapeError(batch)) {
    return shapeError('matmul-shape', `matmul: batch dimensions do not broadcast: ${describe()}`);
  }
  const dims = [...batch.dims];
  // With `[..., k]` on the left, the row dimension is inside the ellipsis.
  const rows = a.dims[a.dims.length - 2];
  if (!aVector && rows !== undefined) dims.push(rows);
  if (!bVector) dims.push(b.dims[b.dims.length - 1]!);
  return { ellipsis: batch.ellipsis, dims };
}

/** Normalises an axis against a shape: -1 is the last axis. Leading-ellipsis shapes allow only negative axes. */
export function normalizeAxis(shape: Shape, axis: number): number | ShapeError {
  const rank = shape.dims.length;
  if (shape.ellipsis) {
    if (axis < 0 && -axis <= rank) return rank + axis;
    return shapeError(
      'axis-out-of-range',
      `axis ${axis} is not known for a tensor of shape ${formatShape(shape)}: with '...' use a negative axis from -1 to -${rank}`,
    );
  }
  if (axis >= -rank && axis < rank) return axis < 0 ? rank + axis : axis;
  return shapeError('axis-out-of-range', `axis ${axis} is out of range for a tensor of rank ${rank} ${formatShape(shape)}`);
}

/** Product of a shape's dims, or null when an ellipsis makes it unknown. */
export function elementCount(shape: Shape): Dim | null {
  if (shape.ellipsis) return null;
  return shape.dims.reduce<Dim>((acc, d) => mulDims(acc, d), constDim(1));
}

/** Removes (or keeps as 1) the given normalised axes. */
export function reduceShape(shape: Shape, axes: readonly number[], keepdim: boolean): Shape {
  const dims: Dim[] = [];
  shape.dims.forEach((d, i) => {
    if (!axes.includes(i)) dims.push(d);
    else if (keepdim) dims.push(constDim(1));
  });
  return { ellipsis: shape.ellipsis, dims };
}

/**
 * Length of `start:end` along a dimension of size `size`, Python style: negative
 * bounds count from the end; constant bounds are clamped to the size.
 */
export function sliceLength(size: Dim, start: Dim | null, end: Dim | null): Dim | ShapeError {
  const resolve = (bound: Dim | null, fallback: Dim): Dim => {
    if (bound === null) return fallback;
    const c = constValue(bound);
    if (c !== null && c < 0) return addDims(size, bound);
    return bound;
  };
  const s = resolve(start, constDim(0));
  const e = resolve(end, size);
  const sizeValue = constValue(size);
  const clamp = (d: Dim): Dim => {
    const v = constValue(d);
    if (v === null || sizeValue === null) return d;
    return constDim(Math.max(0, Math.min(v, sizeValue)));
  };
  const length = subDims(clamp(e), clamp(s));
  const v = constValue(length);
  if (v !== null && v <= 0) {
    return shapeError('empty-slice', `the slice selects no elements of a dimension of size ${formatDim(size)}`);
  }
  return length;
}

/** `size / parts`, when it divides exactly (or is symbolic). */
export function splitDim(size: Dim, parts: number): Dim | ShapeError {
  const part = divDims(size, constDim(parts))!;
  const v = constValue(part);
  if (v !== null && !Number.isInteger(v)) {
    return shapeError('split-shape', `cannot split a dimension of size ${formatDim(size)} into ${parts} equal parts`);
  }
  return part;
}
