/**
 * Symbolic dimension arithmetic. A dimension is a Laurent polynomial with
 * rational coefficients over named symbols (`3 * d`, `d / heads`, `T - 1`,
 * `B * T`), kept in a canonical form so that equal expressions compare equal
 * (`heads * (d / heads)` is `d`). Division is exact by definition; whether it
 * is integral is checked when values become known. `%` and other
 * non-polynomial forms become opaque atoms.
 */

/** A rational number n/d with d > 0 and gcd(n, d) = 1. */
interface Rational {
  readonly n: number;
  readonly d: number;
}

function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a || 1;
}

function rational(n: number, d = 1): Rational {
  if (d < 0) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d);
  return { n: n / g, d: d / g };
}

const addQ = (a: Rational, b: Rational): Rational => rational(a.n * b.d + b.n * a.d, a.d * b.d);
const mulQ = (a: Rational, b: Rational): Rational => rational(a.n * b.n, a.d * b.d);

/** A term: coefficient times a product of symbols raised to non-zero integer powers. */
interface Term {
  readonly coef: Rational;
  /** Sorted by symbol name. */
  readonly powers: readonly (readonly [string, number])[];
}

/** A dimension: a sum of terms in canonical order (no zero coefficients, no repeated monomials). */
export interface Dim {
  readonly terms: readonly Term[];
}

const monomialKey = (powers: Term['powers']): string => powers.map(([s, p]) => `${s}^${p}`).join('*');

function normalize(terms: Iterable<Term>): Dim {
  const byKey = new Map<string, Term>();
  for (const t of terms) {
    const key = monomialKey(t.powers);
    const prev = byKey.get(key);
    byKey.set(key, prev ? { coef: addQ(prev.coef, t.coef), powers: t.powers } : t);
  }
  const out = [...byKey.values()].filter((t) => t.coef.n !== 0);
  out.sort((a, b) => degree(b) - degree(a) || monomialKey(a.powers).localeCompare(monomialKey(b.powers)));
  return { terms: out };
}

const degree = (t: Term): number => t.powers.reduce((s, [, p]) => s + p, 0);

export function constDim(value: number): Dim {
  return normalize([{ coef: rational(value), powers: [] }]);
}

export function symDim(name: string): Dim {
  return { terms: [{ coef: rational(1), powers: [[name, 1]] }] };
}

export function addDims(a: Dim, b: Dim): Dim {
  return normalize([...a.terms, ...b.terms]);
}

export function negDim(a: Dim): Dim {
  return { terms: a.terms.map((t) => ({ coef: rational(-t.coef.n, t.coef.d), powers: t.powers })) };
}

export function subDims(a: Dim, b: Dim): Dim {
  return addDims(a, negDim(b));
}

function mulTerms(a: Term, b: Term): Term {
  const powers = new Map<string, number>(a.powers);
  for (const [s, p] of b.powers) powers.set(s, (powers.get(s) ?? 0) + p);
  const sorted = [...powers.entries()].filter(([, p]) => p !== 0).sort(([x], [y]) => x.localeCompare(y));
  return { coef: mulQ(a.coef, b.coef), powers: sorted };
}

export function mulDims(a: Dim, b: Dim): Dim {
  const out: Term[] = [];
  for (const x of a.terms) for (const y of b.terms) out.push(mulTerms(x, y));
  return normalize(out);
}

/**
 * Exact division. Division by a single term inverts it; division by a sum of
 * terms has no polynomial form, so the quotient becomes an opaque atom.
 * Returns null for division by zero.
 */
export function divDims(a: Dim, b: Dim): Dim | null {
  if (b.terms.length === 0) return null;
  if (b.terms.length === 1) {
    const t = b.terms[0]!;
    const inverse: Term = {
      coef: rational(t.coef.d, t.coef.n),
      powers: t.powers.map(([s, p]) => [s, -p] as const),
    };
    return mulDims(a, { terms: [inverse] });
  }
  return symDim(`(${formatDim(a)}) / (${formatDim(b)})`);
}

/** `a % b`: folded when both are constants, an opaque atom otherwise. */
export function modDims(a: Dim, b: Dim): Dim | null {
  const x = constValue(a);
  const y = constValue(b);
  if (y === 0) return null;
  if (x !== null && y !== null && Number.isInteger(x) && Number.isInteger(y)) return constDim(((x % y) + y) % y);
  if (a.terms.length === 0) return constDim(0);
  return symDim(`${wrap(a)} % ${wrap(b)}`);
}

function wrap(d: Dim): string {
  const s = formatDim(d);
  return d.terms.length > 1 || /[ /*%]/.test(s) ? `(${s})` : s;
}

export function dimsEqual(a: Dim, b: Dim): boolean {
  return subDims(a, b).terms.length === 0;
}

/** The constant value of a dimension, or null if it mentions a symbol. */
export function constValue(d: Dim): number | null {
  if (d.terms.length === 0) return 0;
  if (d.terms.length === 1 && d.terms[0]!.powers.length === 0) return d.terms[0]!.coef.n / d.terms[0]!.coef.d;
  return null;
}

/** The symbols a dimension mentions. */
export function dimSymbols(d: Dim): string[] {
  const out = new Set<string>();
  for (const t of d.terms) for (const [s] of t.powers) out.add(s);
  return [...out];
}

/** Replaces symbols by dimensions. */
export function substituteDim(d: Dim, bindings: ReadonlyMap<string, Dim>): Dim {
  if (bindings.size === 0 || !dimSymbols(d).some((s) => bindings.has(s))) return d;
  let result: Dim = { terms: [] };
  for (const t of d.terms) {
    let term: Dim = { terms: [{ coef: t.coef, powers: [] }] };
    for (const [s, p] of t.powers) {
      const factor = bindings.get(s) ?? symDim(s);
      for (let i = 0; i < Math.abs(p); i++) {
        // Division by zero cannot be represented; keep the symbol so the caller sees a non-constant.
        term = p > 0 ? mulDims(term, factor) : (divDims(term, factor) ?? symDim(`${formatDim(term)} / 0`));
      }
    }
    result = addDims(result, term);
  }
  return result;
}

/**
 * If `pattern` is `c * s + k` for one symbol `s` that is free (not bound), the
 * value of `s` that makes it equal `actual`; otherwise null.
 */
export function solveFor(pattern: Dim, actual: Dim, isFree: (symbol: string) => boolean): { symbol: string; value: Dim } | null {
  const free = dimSymbols(pattern).filter(isFree);
  if (free.length !== 1) return null;
  const s = free[0]!;
  let linear: Term | null = null;
  const rest: Term[] = [];
  for (const t of pattern.terms) {
    const p = t.powers.find(([x]) => x === s);
    if (!p) rest.push(t);
    else if (p[1] === 1 && t.powers.length === 1 && !linear) linear = t;
    else return null;
  }
  if (!linear) return null;
  const value = divDims(subDims(actual, { terms: rest }), { terms: [{ coef: linear.coef, powers: [] }] });
  return value ? { symbol: s, value } : null;
}

function formatRational(q: Rational): string {
  return q.d === 1 ? String(q.n) : `${q.n}/${q.d}`;
}

function formatTerm(t: Term): { text: string; negative: boolean } {
  const negative = t.coef.n < 0;
  const coef = rational(Math.abs(t.coef.n), t.coef.d);
  const num = t.powers.filter(([, p]) => p > 0).flatMap(([s, p]) => Array<string>(p).fill(s));
  const den = t.powers.filter(([, p]) => p < 0).flatMap(([s, p]) => Array<string>(-p).fill(s));
  const numParts = coef.n !== 1 || num.length === 0 ? [String(coef.n), ...num] : num;
  const denParts = coef.d !== 1 ? [String(coef.d), ...den] : den;
  let text = numParts.join(' * ');
  if (denParts.length) text += ' / ' + (denParts.length > 1 ? `(${denParts.join(' * ')})` : denParts[0]);
  return { text, negative };
}

/** Canonical text of a dimension: `3 * d`, `d / heads`, `T - 1`. */
export function formatDim(d: Dim): string {
  if (d.terms.length === 0) return '0';
  const c = constValue(d);
  if (c !== null) return formatRational(rational(d.terms[0]!.coef.n, d.terms[0]!.coef.d));
  let out = '';
  d.terms.forEach((t, i) => {
    const { text, negative } = formatTerm(t);
    if (i === 0) out = negative ? `-${text}` : text;
    else out += negative ? ` - ${text}` : ` + ${text}`;
  });
  return out;
}

/** True when the dimension is a known non-integer or negative constant. */
export function isInvalidConstant(d: Dim): boolean {
  const c = constValue(d);
  return c !== null && (!Number.isInteger(c) || c < 0);
}
