/**
 * Values of the lowering interpreter: what a recipe expression evaluates to
 * once every dimension is concrete. Tensors are IR values; everything else
 * (numbers, models, tokenizers, datasets, settings) is known at compile time.
 */
import type { LV } from './types.js';

export type { DatasetSpec, LV, TokenizerSpec } from './types.js';

export class LoweringError extends Error {}

/** A feature the checker accepts but this version cannot lower or run yet: reported plainly, not as a bug. */
export class NotYetSupported extends LoweringError {}

export function describeLV(v: LV): string {
  switch (v.k) {
    case 'tensor':
      return `a tensor ${v.v.dtype}[${v.v.shape.join(', ')}]`;
    case 'int':
    case 'float':
      return `the number ${v.n}`;
    default:
      return `a ${v.k}`;
  }
}

export function asNumber(v: LV, what: string): number {
  if (v.k === 'int' || v.k === 'float') return v.n;
  throw new LoweringError(`${what}: expected a number, got ${describeLV(v)}`);
}

export function asInt(v: LV, what: string): number {
  if (v.k === 'int') return v.n;
  if (v.k === 'float' && Number.isInteger(v.n)) return v.n;
  throw new LoweringError(`${what}: expected an integer, got ${describeLV(v)}`);
}

export function asIntList(v: LV, what: string): number[] {
  if (v.k === 'list' || v.k === 'tuple') return v.items.map((x) => asInt(x, what));
  return [asInt(v, what)];
}

export function asBool(v: LV, what: string): boolean {
  if (v.k === 'bool') return v.b;
  throw new LoweringError(`${what}: expected true or false, got ${describeLV(v)}`);
}
