import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addDims,
  constDim,
  constValue,
  dimsEqual,
  divDims,
  formatDim,
  modDims,
  mulDims,
  solveFor,
  subDims,
  substituteDim,
  symDim,
  type Dim,
} from '../../src/check/dims.js';

const SYMBOLS = ['B', 'T', 'd', 'heads'];

/** Random dimension expressions over a few symbols, with their evaluation at a fixed point. */
const dimArb: fc.Arbitrary<Dim> = fc.letrec<{ dim: Dim }>((tie) => ({
  dim: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: -5, max: 9 }).map(constDim),
    fc.constantFrom(...SYMBOLS).map(symDim),
    fc.tuple(tie('dim'), tie('dim')).map(([a, b]) => addDims(a, b)),
    fc.tuple(tie('dim'), tie('dim')).map(([a, b]) => subDims(a, b)),
    fc.tuple(tie('dim'), tie('dim')).map(([a, b]) => mulDims(a, b)),
  ),
})).dim;

const POINT = new Map<string, Dim>([
  ['B', constDim(3)],
  ['T', constDim(7)],
  ['d', constDim(12)],
  ['heads', constDim(4)],
]);

const evalAt = (d: Dim): number => constValue(substituteDim(d, POINT))!;

describe('dimension algebra', () => {
  it('normalises equal expressions to equal forms', () => {
    const d = symDim('d');
    const heads = symDim('heads');
    expect(dimsEqual(mulDims(heads, divDims(d, heads)!), d)).toBe(true);
    expect(dimsEqual(mulDims(constDim(3), d), addDims(addDims(d, d), d))).toBe(true);
    expect(formatDim(subDims(symDim('T'), constDim(1)))).toBe('T - 1');
    expect(formatDim(divDims(d, heads)!)).toBe('d / heads');
    expect(formatDim(mulDims(constDim(3), d))).toBe('3 * d');
    expect(formatDim(mulDims(symDim('B'), symDim('T')))).toBe('B * T');
  });

  it('folds constant modulo and keeps symbolic modulo opaque', () => {
    expect(constValue(modDims(constDim(130), constDim(4))!)).toBe(2);
    expect(formatDim(modDims(symDim('d'), symDim('heads'))!)).toBe('d % heads');
    expect(modDims(constDim(1), constDim(0))).toBeNull();
    expect(divDims(constDim(1), constDim(0))).toBeNull();
  });

  it('ring laws hold (checked by evaluation at a point)', () => {
    fc.assert(
      fc.property(dimArb, dimArb, dimArb, (a, b, c) => {
        expect(dimsEqual(mulDims(addDims(a, b), c), addDims(mulDims(a, c), mulDims(b, c)))).toBe(true);
        expect(dimsEqual(addDims(a, b), addDims(b, a))).toBe(true);
        expect(evalAt(addDims(a, b)) + 0).toBe(evalAt(a) + evalAt(b) + 0);
        expect(evalAt(mulDims(a, b)) + 0).toBe(evalAt(a) * evalAt(b) + 0);
        expect(dimsEqual(subDims(a, a), constDim(0))).toBe(true);
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('division by a single term is the inverse of multiplication', () => {
    fc.assert(
      fc.property(dimArb, fc.constantFrom(...SYMBOLS), fc.integer({ min: 1, max: 6 }), (a, s, k) => {
        const divisor = mulDims(constDim(k), symDim(s));
        expect(dimsEqual(mulDims(divDims(a, divisor)!, divisor), a)).toBe(true);
      }),
      { seed: 7, numRuns: 200 },
    );
  });

  it('solves c * s + k = value for one free symbol', () => {
    const pattern = addDims(mulDims(constDim(3), symDim('d')), constDim(2));
    const solved = solveFor(pattern, constDim(386), (s) => s === 'd');
    expect(solved?.symbol).toBe('d');
    expect(constValue(solved!.value)).toBe(128);
    expect(solveFor(mulDims(symDim('a'), symDim('b')), constDim(6), () => true)).toBeNull();
  });
});
