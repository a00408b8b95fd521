/**
 * Checks and small helpers shared by the op families: arity, dtypes,
 * attributes, axes. Messages start with the op's name.
 */
import { IrError, type Attrs, type ValueType } from '../graph.js';
import { formatShapeList as fmt, type DType, type Tensor } from '../tensor.js';

export function opError(op: string, message: string): IrError {
  return new IrError(`${op}: ${message}`);
}

export function describe(t: ValueType): string {
  return `${t.dtype}${fmt(t.shape)}`;
}

export function expectArity(op: string, inputs: readonly ValueType[], n: number): void {
  if (inputs.length !== n) throw opError(op, `expects ${n} input${n === 1 ? '' : 's'}, got ${inputs.length}`);
}

export function expectDtype(op: string, t: ValueType, allowed: readonly DType[], what = 'input'): void {
  if (!allowed.includes(t.dtype)) throw opError(op, `${what} must be ${allowed.join(' or ')}, got ${describe(t)}`);
}

export function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'data' in v && 'shape' in v && 'dtype' in v;
}

export function intsAttr(op: string, attrs: Attrs, key: string): number[] {
  const v = attrs[key];
  if (!Array.isArray(v) || !(v as readonly unknown[]).every((x) => Number.isInteger(x))) {
    throw opError(op, `attribute ${key} must be a list of integers, got ${JSON.stringify(v)}`);
  }
  return [...(v as readonly number[])];
}

export function intAttr(op: string, attrs: Attrs, key: string): number {
  const v = attrs[key];
  if (!Number.isInteger(v)) throw opError(op, `attribute ${key} must be an integer, got ${JSON.stringify(v)}`);
  return v as number;
}

export function boolAttr(op: string, attrs: Attrs, key: string): boolean {
  const v = attrs[key];
  if (typeof v !== 'boolean') throw opError(op, `attribute ${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** An axis in [-rank, rank) made non-negative. */
export function normalizeAxis(op: string, axis: number, rank: number, shape: readonly number[]): number {
  if (axis < -rank || axis >= rank) throw opError(op, `axis ${axis} is out of range for shape ${fmt(shape)}`);
  return axis < 0 ? axis + rank : axis;
}

/** Axes made non-negative, without duplicates. */
export function normalizeAxes(op: string, axes: readonly number[], shape: readonly number[]): number[] {
  const out = axes.map((a) => normalizeAxis(op, a, shape.length, shape));
  if (new Set(out).size !== out.length) throw opError(op, `duplicate axes [${axes.join(', ')}] for shape ${fmt(shape)}`);
  return out;
}

export function tensorOf(dtype: DType, shape: readonly number[], data: Float64Array): Tensor {
  return { dtype, shape: [...shape], data };
}

