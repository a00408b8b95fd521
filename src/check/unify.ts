/**
 * Unification of calls against signatures: an argument's type is matched
 * against a parameter's written type, binding the signature's free dimension
 * symbols and its leading `...`; the bindings then give the call's result type.
 * Pure functions: they return a message instead of reporting.
 */
import { dimSymbols, dimsEqual, isInvalidConstant, solveFor, substituteDim, type Dim } from './dims.js';
import { describeKind, formatShape, formatType, shapesEqual, tensor, type Shape, type TensorTy, type Ty } from './types.js';

/** What a call has bound so far: values of the signature's free symbols and the dims a leading `...` stands for. */
export interface Bindings {
  /** The signature's free symbols (the only ones unification may bind). */
  readonly free: ReadonlySet<string>;
  readonly dims: Map<string, Dim>;
  /** The dimensions matched by a leading `...`, once an argument has bound them. */
  lead: Shape | null;
}

/** Empty bindings for a signature with these free symbols. */
export function newBindings(free: ReadonlySet<string>): Bindings {
  return { free, dims: new Map(), lead: null };
}

/**
 * Matches an actual argument type against a parameter's written type,
 * binding the signature's free symbols and leading `...`. Returns a message
 * when they do not match.
 */
export function unify(pattern: Ty, actual: Ty, b: Bindings): string | null {
  if (actual.k === 'error' || pattern.k === 'error') return null;
  switch (pattern.k) {
    case 'tensor': {
      let a = actual;
      if (a.k === 'int' || a.k === 'float') a = tensor(pattern.dtype, []);
      if (a.k !== 'tensor') return `expected ${formatType(pattern)}, got ${describeKind(actual)}`;
      if (a.dtype !== pattern.dtype) return `expected ${showWithBindings(pattern, b)}, got ${formatType(a)} (dtype ${a.dtype} instead of ${pattern.dtype})`;
      return unifyShape(pattern, a, b);
    }
    case 'int': {
      if (actual.k !== 'int') return `expected an integer, got ${describeKind(actual)}`;
      // A `dim` parameter of a function is a symbol of its signature: bind it to the argument's value.
      const symbol = pattern.value && dimSymbols(pattern.value)[0];
      if (symbol && b.free.has(symbol) && actual.value && !b.dims.has(symbol)) b.dims.set(symbol, actual.value);
      return null;
    }
    case 'float':
      return actual.k === 'float' || actual.k === 'int' ? null : `expected a number, got ${describeKind(actual)}`;
    case 'bool':
      return actual.k === 'bool' ? null : `expected true or false, got ${describeKind(actual)}`;
    case 'str':
      return actual.k === 'str' ? null : `expected a string, got ${describeKind(actual)}`;
    case 'model':
      return actual.k === 'model' ? null : `expected a model, got ${describeKind(actual)}`;
    case 'tuple': {
      if (actual.k !== 'tuple' || actual.elements.length !== pattern.elements.length) return `expected a tuple of ${pattern.elements.length}, got ${describeKind(actual)}`;
      for (const [i, p] of pattern.elements.entries()) {
        const m = unify(p, actual.elements[i]!, b);
        if (m) return m;
      }
      return null;
    }
    default:
      return null;
  }
}

function unifyShape(pattern: TensorTy, actual: TensorTy, b: Bindings): string | null {
  const p = pattern.shape;
  const a = actual.shape;
  const mismatch = (): string => `expected ${showWithBindings(pattern, b)}, got ${formatType(actual)}`;
  if (!p.ellipsis && a.ellipsis) return `${mismatch()} of unknown rank`;
  if (p.ellipsis ? a.dims.length < p.dims.length && !a.ellipsis : a.dims.length !== p.dims.length) return mismatch();
  const offset = a.dims.length - p.dims.length;
  if (p.ellipsis) {
    const lead: Shape = { ellipsis: a.ellipsis, dims: a.dims.slice(0, Math.max(0, offset)) };
    if (b.lead && !shapesEqual(b.lead, lead)) return `${mismatch()}: its leading dimensions ${formatShape(lead)} differ from ${formatShape(b.lead)} bound by an earlier argument`;
    b.lead = lead;
  }
  for (let i = 0; i < p.dims.length; i++) {
    const want = substituteDim(p.dims[i]!, b.dims);
    const got = a.dims[offset + i];
    if (got === undefined) return mismatch();
    if (dimsEqual(want, got)) continue;
    const solved = solveFor(want, got, (s) => b.free.has(s) && !b.dims.has(s));
    if (solved && !isInvalidConstant(solved.value)) {
      b.dims.set(solved.symbol, solved.value);
      continue;
    }
    return mismatch();
  }
  return null;
}

/** A written type with what is known of its symbols: `f32[B, T, d]` shows as `f32[B, T, 128]`. */
export function showWithBindings(t: Ty, b: Bindings): string {
  return formatType(substitute(t, b));
}

/** Applies bindings to a type (return types of calls). */
export function substitute(t: Ty, b: Bindings): Ty {
  if (t.k === 'tensor') {
    const dims = t.shape.dims.map((d) => substituteDim(d, b.dims));
    if (t.shape.ellipsis && b.lead) return { k: 'tensor', dtype: t.dtype, shape: { ellipsis: b.lead.ellipsis, dims: [...b.lead.dims, ...dims] } };
    return { k: 'tensor', dtype: t.dtype, shape: { ellipsis: t.shape.ellipsis, dims } };
  }
  if (t.k === 'int' && t.value) return { k: 'int', value: substituteDim(t.value, b.dims) };
  if (t.k === 'tuple') return { k: 'tuple', elements: t.elements.map((x) => substitute(x, b)) };
  return t;
}
