/**
 * Operator typing: what `-x`, `!x` and `a op b` mean for each pair of operand
 * types (integers and dimensions, floats, booleans, strings, tensors with
 * broadcasting, matmul), with constant folding of known values.
 */
import type { BinaryExpr, Span } from '../language/ast.js';
import type { DiagnosticOptions } from '../language/diagnostics.js';
import { addDims, constDim, constValue, dimsEqual, divDims, modDims, mulDims, negDim, subDims, type Dim } from './dims.js';
import { exprText } from './exprText.js';
import { broadcastShapes, isShapeError, matmulShape } from './shapes.js';
import { ERROR, describeKind, formatType, numberConst, tensor, type TensorTy, type Ty } from './types.js';

/** Where typing rules report a problem: the checker, whose notes name the instantiation chain. */
export interface Reporter {
  report(code: string, message: string, span: Span, options?: DiagnosticOptions): void;
}

/** The type of `-x` or `!x`; reports and returns ERROR when the operand does not allow it. */
export function unaryOperatorType(r: Reporter, op: '-' | '!', t: Ty, span: Span): Ty {
  if (t.k === 'error') return t;
  if (op === '-') {
    if (t.k === 'int') return { k: 'int', value: t.value && negDim(t.value) };
    if (t.k === 'float') return { k: 'float', value: t.value === null ? null : -t.value };
    if (t.k === 'tensor' && t.dtype !== 'bool' && t.dtype !== 'str') return t;
    if (t.k === 'none') return t;
  } else {
    if (t.k === 'bool') return { k: 'bool', value: t.value === null ? null : !t.value };
    if (t.k === 'tensor' && t.dtype === 'bool') return t;
  }
  r.report('type-mismatch', `'${op}' cannot be applied to ${describeKind(t)}`, span);
  return ERROR;
}

/**
 * The type of `left op right` (both sides inferred); reports and returns
 * ERROR when they do not combine. Constant operands are folded.
 */
export function binaryOperatorType(r: Reporter, e: BinaryExpr, left: Ty, right: Ty): Ty {
  const op = e.op;
  if (left.k === 'error' || right.k === 'error') return ERROR;
  if (op === '@') return matmulType(r, e, left, right);
  // An absent optional member is the identity: `x @ w + b` without bias is `x @ w`.
  if (left.k === 'none' || right.k === 'none') {
    if (['+', '-', '*'].includes(op)) return left.k === 'none' ? (op === '-' ? unaryOperatorType(r, '-', right, e.loc) : right) : left;
  }
  if (op === '&&' || op === '||') {
    if (left.k === 'bool' && right.k === 'bool') {
      const v = left.value === null || right.value === null ? null : op === '&&' ? left.value && right.value : left.value || right.value;
      return { k: 'bool', value: v };
    }
    if (left.k === 'tensor' && right.k === 'tensor' && left.dtype === 'bool' && right.dtype === 'bool') return broadcastPair(r, left, right, 'bool', e);
    r.report('type-mismatch', `'${op}' needs booleans, but got ${describeKind(left)} and ${describeKind(right)}`, e.opLoc);
    return ERROR;
  }
  if (left.k === 'tensor' || right.k === 'tensor') return tensorBinary(r, op, left, right, e);
  if (left.k === 'int' && right.k === 'int') return intBinary(r, op, left.value, right.value, e);
  if ((left.k === 'int' || left.k === 'float') && (right.k === 'int' || right.k === 'float')) {
    return floatBinary(r, op, numberConst(left), numberConst(right), e);
  }
  if (left.k === 'str' && right.k === 'str' && (op === '==' || op === '!=' || op === '+')) {
    if (op === '+') return { k: 'str', value: left.value !== null && right.value !== null ? left.value + right.value : null };
    const eq = left.value === null || right.value === null ? null : left.value === right.value;
    return { k: 'bool', value: eq === null ? null : op === '==' ? eq : !eq };
  }
  if (left.k === 'bool' && right.k === 'bool' && (op === '==' || op === '!=')) {
    const eq = left.value === null || right.value === null ? null : left.value === right.value;
    return { k: 'bool', value: eq === null ? null : op === '==' ? eq : !eq };
  }
  r.report('type-mismatch', `'${op}' cannot combine ${describeKind(left)} and ${describeKind(right)}`, e.opLoc);
  return ERROR;
}

/** `a @ b` on tensors (the checker handles `model @ stage` itself). */
function matmulType(r: Reporter, e: BinaryExpr, left: Ty, right: Ty): Ty {
  if (left.k === 'tensor' && right.k === 'tensor') {
    const s = matmulShape(left.shape, right.shape, () => [exprText(e.left), exprText(e.right)]);
    if (isShapeError(s)) {
      r.report(s.code, s.message, e.opLoc);
      return ERROR;
    }
    if (left.dtype !== right.dtype) return dtypeError(r, 'matmul', left, right, e.opLoc);
    return { k: 'tensor', dtype: left.dtype, shape: s };
  }
  r.report('type-mismatch', `'@' needs two tensors (matmul) or a model and a stage (checkpoint), but got ${describeKind(left)} and ${describeKind(right)}`, e.opLoc);
  return ERROR;
}

function dtypeError(r: Reporter, what: string, a: TensorTy, b: TensorTy, span: Span): Ty {
  r.report('dtype-mismatch', `${what}: dtypes differ: ${formatType(a)} and ${formatType(b)}`, span, {
    hint: `convert one side with cast(x, ${a.dtype})`,
  });
  return ERROR;
}

function intBinary(r: Reporter, op: BinaryExpr['op'], a: Dim | null, b: Dim | null, e: BinaryExpr): Ty {
  const int = (value: Dim | null): Ty => ({ k: 'int', value });
  const cmp = (fn: (d: number) => boolean, eqIfSame: boolean | null): Ty => {
    if (!a || !b) return { k: 'bool', value: null };
    const diff = subDims(a, b);
    const c = constValue(diff);
    if (c !== null) return { k: 'bool', value: fn(c) };
    return { k: 'bool', value: dimsEqual(a, b) ? eqIfSame : null };
  };
  switch (op) {
    case '+':
      return int(a && b && addDims(a, b));
    case '-':
      return int(a && b && subDims(a, b));
    case '*':
      return int(a && b && mulDims(a, b));
    case '/': {
      if (!a || !b) return int(null);
      // Exact (rational) division: `d / 3` with d = 10 stays 10/3 and is refused where a dimension is needed.
      const q = divDims(a, b);
      return q ? int(q) : divisionByZero(r, e);
    }
    case '%': {
      if (!a || !b) return int(null);
      const m = modDims(a, b);
      return m ? int(m) : divisionByZero(r, e);
    }
    case '**': {
      const x = a && constValue(a);
      const y = b && constValue(b);
      if (x === null || y === null || x === undefined || y === undefined) return y !== null && y !== undefined && y >= 0 && a ? int(Array.from({ length: y }).reduce<Dim>((acc) => mulDims(acc, a), constDim(1))) : int(null);
      return y >= 0 ? int(constDim(x ** y)) : { k: 'float', value: x ** y };
    }
    case '==':
      return cmp((d) => d === 0, true);
    case '!=':
      return cmp((d) => d !== 0, false);
    case '<':
      return cmp((d) => d < 0, false);
    case '<=':
      return cmp((d) => d <= 0, true);
    case '>':
      return cmp((d) => d > 0, false);
    case '>=':
      return cmp((d) => d >= 0, true);
    default:
      return ERROR;
  }
}

function divisionByZero(r: Reporter, e: BinaryExpr): Ty {
  r.report('division-by-zero', `division by zero in ${exprText(e)}`, e.opLoc);
  return ERROR;
}

function floatBinary(r: Reporter, op: BinaryExpr['op'], a: number | null, b: number | null, e: BinaryExpr): Ty {
  const known = a !== null && b !== null;
  const num = (f: (x: number, y: number) => number): Ty => ({ k: 'float', value: known ? f(a, b) : null });
  const bool = (f: (x: number, y: number) => boolean): Ty => ({ k: 'bool', value: known ? f(a, b) : null });
  switch (op) {
    case '+':
      return num((x, y) => x + y);
    case '-':
      return num((x, y) => x - y);
    case '*':
      return num((x, y) => x * y);
    case '/':
      if (b === 0) return divisionByZero(r, e);
      return num((x, y) => x / y);
    case '%':
      return num((x, y) => x % y);
    case '**':
      return num((x, y) => x ** y);
    case '==':
      return bool((x, y) => x === y);
    case '!=':
      return bool((x, y) => x !== y);
    case '<':
      return bool((x, y) => x < y);
    case '<=':
      return bool((x, y) => x <= y);
    case '>':
      return bool((x, y) => x > y);
    case '>=':
      return bool((x, y) => x >= y);
    default:
      return ERROR;
  }
}

function tensorBinary(r: Reporter, op: BinaryExpr['op'], left: Ty, right: Ty, e: BinaryExpr): Ty {
  const asTensor = (t: Ty, other: TensorTy | null): TensorTy | null => {
    if (t.k === 'tensor') return t;
    // Numeric constants adopt the tensor's dtype (weak typing, as in JAX).
    if ((t.k === 'int' || t.k === 'float') && other) return tensor(other.dtype, []);
    return null;
  };
  const a = asTensor(left, right.k === 'tensor' ? right : null);
  const b = asTensor(right, left.k === 'tensor' ? left : null);
  if (!a || !b) {
    r.report('type-mismatch', `'${op}' cannot combine ${describeKind(left)} and ${describeKind(right)}`, e.opLoc);
    return ERROR;
  }
  if (a.dtype !== b.dtype) return dtypeError(r, `'${op}'`, a, b, e.opLoc);
  const comparison = ['==', '!=', '<', '<=', '>', '>='].includes(op);
  if (!comparison && (a.dtype === 'bool' || a.dtype === 'str')) {
    r.report('type-mismatch', `'${op}' is not defined for ${a.dtype} tensors`, e.opLoc);
    return ERROR;
  }
  return broadcastPair(r, a, b, comparison ? 'bool' : a.dtype, e);
}

function broadcastPair(r: Reporter, a: TensorTy, b: TensorTy, dtype: TensorTy['dtype'], e: BinaryExpr): Ty {
  const s = broadcastShapes(a.shape, b.shape);
  if (isShapeError(s)) {
    r.report(s.code, `'${e.op}': ${s.message} (${exprText(e.left)} is ${formatType(a)}, ${exprText(e.right)} is ${formatType(b)})`, e.opLoc);
    return ERROR;
  }
  return { k: 'tensor', dtype, shape: s };
}
