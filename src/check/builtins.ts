/**
 * The built-ins: tensor primitives (the op table's type rules) and the
 * recipe-level calls (tokenizers, datasets, optimizers, schedules, rewards).
 * One entry per built-in: its parameters and its type rule, side by side.
 * Nothing else in the checker switches on built-in names.
 */
import { DATASET_FORMATS } from './dataSchema.js';
import type { Span } from '../language/ast.js';
import { addDims, constDim, constValue, dimsEqual, formatDim, mulDims, symDim, type Dim } from './dims.js';
import {
  broadcastShapes,
  elementCount,
  isShapeError,
  normalizeAxis,
  reduceShape,
  splitDim,
  type ShapeError,
} from './shapes.js';
import {
  DTYPES,
  ERROR,
  FLOAT_DTYPES,
  describeKind,
  formatShape,
  formatType,
  intConst,
  numberConst,
  shapesEqual,
  tensor,
  type DType,
  type ModelInstance,
  type Shape,
  type TensorTy,
  type Ty,
} from './types.js';
import type { DiagnosticOptions } from '../language/diagnostics.js';
import { rowSplitSizes, textSplitSizes, type SplitSizes } from './splits.js';
import { CHAT_TEMPLATE_FIELDS, DEFAULT_CHAT_TEMPLATE } from './chatTemplate.js';
import { readConfigSpecials, tokenizerJsonPath, type ConfigSpecials } from './hfTokenizer.js';

/** How an argument is read: evaluated as an expression, or taken as a bare name from a fixed set. */
export type ArgMode = 'value' | 'symbol' | 'symbols';

export interface ParamSpec {
  readonly name: string;
  readonly mode?: ArgMode;
  /** Allowed names for `symbol`/`symbols` parameters (any name when absent). */
  readonly symbols?: readonly string[];
  /** Absent: the argument is required. */
  readonly default?: Ty;
}

export interface BoundArg {
  readonly ty: Ty;
  readonly span: Span;
  /** Source text of the argument, for messages. */
  readonly text: string;
}

/** A data file read at check time (possibly cut at a size cap). */
export interface DataFile {
  readonly text: string;
  readonly absPath: string;
  readonly truncated: boolean;
}

/**
 * Text of a data file to check against an alphabet: `offset` locates it in the
 * file; `exact` when its characters sit at offset + index (a text corpus), not
 * inside a decoded JSON row (located at the row's start).
 */
export interface EncodablePiece {
  readonly text: string;
  readonly offset: number;
  readonly exact: boolean;
}

/** A character tokenizer: its alphabet and the recipe text that names it. */
export interface CharTokenizer {
  readonly alphabet: string;
  readonly name: string;
}

/** What a type rule can see and do at one call. */
export interface CallSite {
  readonly name: string;
  readonly span: Span;
  readonly args: ReadonlyMap<string, BoundArg>;
  report(code: string, message: string, span?: Span, options?: DiagnosticOptions): void;
  /** Services of the checker a rule may need (files, fresh symbols, model wrappers). */
  readonly services: BuiltinServices;
}

export interface BuiltinServices {
  /** Reads a data file named relative to the recipe; reports and returns null when missing. */
  /**
   * Reads a data file named relative to the recipe, at most `maxBytes` of it
   * (0 only checks that it exists); reports and returns null when it is missing.
   */
  readDataFile(path: string, span: Span, maxBytes?: number): DataFile | null;
  /** Records the vocabulary size read from a tokenizer file, so lowering need not read it again. */
  noteTokenizerVocab(absPath: string, size: number): void;
  /** Validates the rows of a JSON-lines file for a dataset format; returns its row count, or null when the file was cut at the size cap. */
  validateJsonl(file: DataFile, format: string, span: Span, tokenizer: CharTokenizer | null): number | null;
  /** Reports characters of the given pieces of a data file that a chars(...) tokenizer cannot encode. */
  checkEncodable(file: DataFile, pieces: readonly EncodablePiece[], tokenizer: CharTokenizer, span: Span): void;
  /** Wraps a model as a stack of n copies. */
  stackModel(n: Dim, inner: ModelInstance, site: CallSite): ModelInstance | null;
  /** A LoRA copy of a model. */
  loraModel(base: ModelInstance, targets: readonly string[], rank: number, site: CallSite): ModelInstance | null;
  /** Datasets: field table for a format, with symbolic batch and length dims; `sizes` when the data was counted. */
  datasetType(format: string, seqLen: Dim | null, split: boolean, display: string, sizes?: SplitSizes | null): Ty;
  /**
   * Stages whose checkpoint of `model` a use at `at` most likely means: inside a
   * stage, the latest earlier stages (through `after`) that train it; elsewhere,
   * every stage that trains it.
   */
  checkpointStages(model: string, at: Span): readonly string[];
  /** The type rule of `pretrained(path)` (check/pretrained.ts): it reads a checkpoint folder and builds a std.nn block. */
  pretrained(site: CallSite): Ty;
}

export interface BuiltinSpec {
  readonly params: readonly ParamSpec[];
  /** Variadic built-ins take any number of positional tensors (none yet; kept explicit). */
  readonly rule: (site: CallSite) => Ty;
}

// ---------------------------------------------------------------- argument helpers

function arg(site: CallSite, name: string): BoundArg | undefined {
  return site.args.get(name);
}

function expectTensor(site: CallSite, name: string, opts: { float?: boolean } = {}): TensorTy | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  if (a.ty.k === 'tensor') {
    if (opts.float && !FLOAT_DTYPES.includes(a.ty.dtype)) {
      site.report('dtype-mismatch', `${site.name}: '${a.text}' must be a floating-point tensor, but it is ${formatType(a.ty)}`, a.span, {
        hint: `convert it first: cast(${a.text}, f32)`,
      });
      return null;
    }
    return a.ty;
  }
  // A numeric constant is a scalar tensor where a tensor is expected.
  if (a.ty.k === 'float' || a.ty.k === 'int') return tensor('f32', []);
  site.report('type-mismatch', `${site.name}: '${a.text}' must be a tensor, but it is ${describeKind(a.ty)}`, a.span);
  return null;
}

function expectInt(site: CallSite, name: string, opts: { min?: number } = {}): number | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  const v = intConst(a.ty);
  if (v === null) {
    site.report('type-mismatch', `${site.name}: '${name}' must be an integer constant, but '${a.text}' is ${describeKind(a.ty)}`, a.span);
    return null;
  }
  if (opts.min !== undefined && v < opts.min) {
    site.report('value-out-of-range', `${site.name}: '${name}' must be at least ${opts.min}, but it is ${v}`, a.span);
    return null;
  }
  return v;
}

/** An integer-valued dimension (possibly symbolic, e.g. `T`). */
function expectDim(site: CallSite, name: string): Dim | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  if (a.ty.k === 'int' && a.ty.value) return a.ty.value;
  site.report('type-mismatch', `${site.name}: '${name}' must be a dimension, but '${a.text}' is ${describeKind(a.ty)}`, a.span);
  return null;
}

function expectNumber(site: CallSite, name: string, opts: { min?: number; max?: number; exclusiveMin?: boolean } = {}): number | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  if (a.ty.k !== 'float' && a.ty.k !== 'int') {
    site.report('type-mismatch', `${site.name}: '${name}' must be a number, but '${a.text}' is ${describeKind(a.ty)}`, a.span);
    return null;
  }
  const v = numberConst(a.ty);
  if (v === null) return null;
  const below = opts.min !== undefined && (opts.exclusiveMin ? v <= opts.min : v < opts.min);
  if (below || (opts.max !== undefined && v > opts.max)) {
    const range = `${opts.exclusiveMin ? '>' : '>='} ${opts.min}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}`;
    site.report('value-out-of-range', `${site.name}: '${name}' must be ${range}, but it is ${v}`, a.span);
    return null;
  }
  return v;
}

function expectStr(site: CallSite, name: string): string | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  if (a.ty.k === 'str' && a.ty.value !== null) return a.ty.value;
  site.report('type-mismatch', `${site.name}: '${name}' must be a string, but '${a.text}' is ${describeKind(a.ty)}`, a.span);
  return null;
}

function expectBool(site: CallSite, name: string): boolean | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  if (a.ty.k === 'bool') return a.ty.value;
  site.report('type-mismatch', `${site.name}: '${name}' must be true or false, but '${a.text}' is ${describeKind(a.ty)}`, a.span);
  return null;
}

function expectModel(site: CallSite, name: string): ModelInstance | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  if (a.ty.k === 'model') return a.ty.model;
  site.report('type-mismatch', `${site.name}: '${name}' must be a model, but '${a.text}' is ${describeKind(a.ty)}`, a.span);
  return null;
}

/** Integers of a constant list or tuple (`[0, 2, 1, 3]`, `(1, 2)`, or a single int). */
function intList(site: CallSite, name: string): number[] | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  const items = a.ty.k === 'list' || a.ty.k === 'tuple' ? a.ty.elements : [a.ty];
  const out: number[] = [];
  for (const item of items) {
    const v = intConst(item);
    if (v === null) {
      site.report('type-mismatch', `${site.name}: '${name}' must be integer constants, but '${a.text}' is ${describeKind(a.ty)}`, a.span);
      return null;
    }
    out.push(v);
  }
  return out;
}

/** A list of dimensions (`[B, T, heads, d / heads]`). */
function dimList(site: CallSite, name: string): Dim[] | null {
  const a = arg(site, name);
  if (!a || a.ty.k === 'error') return null;
  if (a.ty.k !== 'list' && a.ty.k !== 'tuple') {
    site.report('type-mismatch', `${site.name}: '${name}' must be a list of dimensions like [B, T, d], but '${a.text}' is ${describeKind(a.ty)}`, a.span);
    return null;
  }
  const out: Dim[] = [];
  for (const item of a.ty.elements) {
    if (item.k === 'error') return null;
    if (item.k !== 'int' || !item.value) {
      site.report('type-mismatch', `${site.name}: every entry of '${name}' must be a dimension, but one is ${describeKind(item)}`, a.span);
      return null;
    }
    const v = constValue(item.value);
    if (v !== null && (!Number.isInteger(v) || v < 0)) {
      site.report('bad-dimension', `${site.name}: dimension ${formatDim(item.value)} in '${a.text}' is not a non-negative integer`, a.span);
      return null;
    }
    out.push(item.value);
  }
  return out;
}

function symbolArg(site: CallSite, name: string): string | null {
  const a = arg(site, name);
  return a && a.ty.k === 'symbol' ? a.ty.name : null;
}

function symbolsArg(site: CallSite, name: string): string[] {
  const a = arg(site, name);
  if (!a || a.ty.k !== 'list') return [];
  return a.ty.elements.flatMap((e) => (e.k === 'symbol' ? [e.name] : []));
}

function axis(site: CallSite, t: TensorTy, name = 'axis'): number | null {
  const v = expectInt(site, name);
  if (v === null) return null;
  const n = normalizeAxis(t.shape, v);
  if (isShapeError(n)) {
    site.report(n.code, `${site.name}: ${n.message}`, arg(site, name)!.span);
    return null;
  }
  return n;
}

function fail(site: CallSite, e: ShapeError, span?: Span): Ty {
  site.report(e.code, `${site.name}: ${e.message}`, span ?? site.span);
  return ERROR;
}

const FLOAT = (value: number | null = null): Ty => ({ k: 'float', value });
const INT = (v: number): Ty => ({ k: 'int', value: constDim(v) });
const BOOL = (value: boolean): Ty => ({ k: 'bool', value });
const EMPTY_LIST: Ty = { k: 'list', elements: [] };

// ---------------------------------------------------------------- tensor primitives

/** Elementwise float op on a tensor, or folded on a numeric constant (`sqrt(64)`). */
function unaryFloat(fold: (x: number) => number): BuiltinSpec {
  return {
    params: [{ name: 'x' }],
    rule: (site) => {
      const a = arg(site, 'x')!;
      if (a.ty.k === 'int' || a.ty.k === 'float') {
        const v = numberConst(a.ty);
        return FLOAT(v === null ? null : fold(v));
      }
      const t = expectTensor(site, 'x', { float: true });
      return t ?? ERROR;
    },
  };
}

function binaryBroadcast(name: string): BuiltinSpec {
  return {
    params: [{ name: 'x' }, { name: 'y' }],
    rule: (site) => {
      const x = expectTensor(site, 'x');
      const y = expectTensor(site, 'y');
      if (!x || !y) return ERROR;
      const s = broadcastShapes(x.shape, y.shape);
      if (isShapeError(s)) return fail(site, s);
      if (x.dtype !== y.dtype && arg(site, 'x')!.ty.k === 'tensor' && arg(site, 'y')!.ty.k === 'tensor') {
        site.report('dtype-mismatch', `${name}: dtypes differ (${x.dtype} vs ${y.dtype})`, site.span);
        return ERROR;
      }
      return { k: 'tensor', dtype: arg(site, 'x')!.ty.k === 'tensor' ? x.dtype : y.dtype, shape: s };
    },
  };
}

function softmaxLike(): BuiltinSpec {
  return {
    params: [{ name: 'x' }, { name: 'axis', default: INT(-1) }],
    rule: (site) => {
      const t = expectTensor(site, 'x', { float: true });
      if (!t) return ERROR;
      return axis(site, t) === null ? ERROR : t;
    },
  };
}

function reduction(): BuiltinSpec {
  return {
    params: [{ name: 'x' }, { name: 'axis', default: { k: 'none' } }, { name: 'keepdim', default: BOOL(false) }],
    rule: (site) => {
      const t = expectTensor(site, 'x');
      if (!t) return ERROR;
      const keep = expectBool(site, 'keepdim') ?? false;
      const axisArg = arg(site, 'axis');
      if (!axisArg || axisArg.ty.k === 'none') return tensor(t.dtype, []);
      const axes = intList(site, 'axis');
      if (!axes) return ERROR;
      const normalized: number[] = [];
      for (const a of axes) {
        const n = normalizeAxis(t.shape, a);
        if (isShapeError(n)) return fail(site, n, axisArg.span);
        if (normalized.includes(n)) {
          site.report('duplicate-axis', `${site.name}: axis ${a} is given twice`, axisArg.span);
          return ERROR;
        }
        normalized.push(n);
      }
      return { k: 'tensor', dtype: t.dtype, shape: reduceShape(t.shape, normalized, keep) };
    },
  };
}

/**
 * A parameter initialiser. `decay: false` (or true) overrides the weight-decay
 * default of the parameter it initialises (decayed when it has two or more axes).
 */
function initializer(name: string, numbers: ParamSpec[]): BuiltinSpec {
  return {
    params: [...numbers, { name: 'decay', default: { k: 'none' } }],
    rule: (site) => {
      for (const p of numbers) if (arg(site, p.name)) expectNumber(site, p.name, { min: 0 });
      if (arg(site, 'decay')?.ty.k !== 'none') expectBool(site, 'decay');
      return { k: 'initializer', name };
    },
  };
}

const tensorOps: Record<string, BuiltinSpec> = {
  exp: unaryFloat(Math.exp),
  log: unaryFloat(Math.log),
  sqrt: unaryFloat(Math.sqrt),
  rsqrt: unaryFloat((x) => 1 / Math.sqrt(x)),
  tanh: unaryFloat(Math.tanh),
  sigmoid: unaryFloat((x) => 1 / (1 + Math.exp(-x))),
  log_sigmoid: unaryFloat((x) => -Math.log1p(Math.exp(-x))),
  softplus: unaryFloat((x) => Math.log1p(Math.exp(x))),
  relu: unaryFloat((x) => Math.max(0, x)),
  gelu: unaryFloat((x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))),
  silu: unaryFloat((x) => x / (1 + Math.exp(-x))),
  abs: unaryFloat(Math.abs),
  maximum: binaryBroadcast('maximum'),
  minimum: binaryBroadcast('minimum'),
  softmax: softmaxLike(),
  log_softmax: softmaxLike(),
  sum: reduction(),
  mean: reduction(),
  max: reduction(),
  where: {
    params: [{ name: 'cond' }, { name: 'x' }, { name: 'y' }],
    rule: (site) => {
      const c = expectTensor(site, 'cond');
      const x = expectTensor(site, 'x');
      const y = expectTensor(site, 'y');
      if (!c || !x || !y) return ERROR;
      if (c.dtype !== 'bool') {
        site.report('dtype-mismatch', `where: the condition must be bool[...], but it is ${formatType(c)}`, arg(site, 'cond')!.span);
        return ERROR;
      }
      const xy = broadcastShapes(x.shape, y.shape);
      if (isShapeError(xy)) return fail(site, xy);
      const all = broadcastShapes(c.shape, xy);
      if (isShapeError(all)) return fail(site, all);
      const dtype = arg(site, 'x')!.ty.k === 'tensor' ? x.dtype : y.dtype;
      return { k: 'tensor', dtype, shape: all };
    },
  },
  reshape: {
    params: [{ name: 'x' }, { name: 'shape' }],
    rule: (site) => {
      const t = expectTensor(site, 'x');
      const dims = dimList(site, 'shape');
      if (!t || !dims) return ERROR;
      const before = elementCount(t.shape);
      const after = dims.reduce<Dim>((acc, d) => mulDims(acc, d), constDim(1));
      if (before && !dimsEqual(before, after)) {
        site.report(
          'reshape-size',
          `reshape: ${formatShape(t.shape)} has ${formatDim(before)} elements but the new shape [${dims.map(formatDim).join(', ')}] has ${formatDim(after)}`,
          arg(site, 'shape')!.span,
        );
        return ERROR;
      }
      return tensor(t.dtype, dims);
    },
  },
  transpose: {
    params: [{ name: 'x' }, { name: 'perm' }],
    rule: (site) => {
      const t = expectTensor(site, 'x');
      const perm = intList(site, 'perm');
      if (!t || !perm) return ERROR;
      const rank = t.shape.dims.length;
      const sorted = [...perm].sort((a, b) => a - b);
      if (t.shape.ellipsis || perm.length !== rank || sorted.some((v, i) => v !== i)) {
        site.report(
          'bad-permutation',
          `transpose: [${perm.join(', ')}] is not a permutation of the ${t.shape.ellipsis ? 'axes (the rank of' : `${rank} axes of`} ${formatType(t)}${t.shape.ellipsis ? ' is unknown)' : ''}`,
          arg(site, 'perm')!.span,
        );
        return ERROR;
      }
      return tensor(t.dtype, perm.map((p) => t.shape.dims[p]!));
    },
  },
  concat: {
    params: [{ name: 'xs' }, { name: 'axis', default: INT(-1) }],
    rule: (site) => {
      const a = arg(site, 'xs')!;
      if (a.ty.k === 'error') return ERROR;
      if ((a.ty.k !== 'list' && a.ty.k !== 'tuple') || a.ty.elements.length === 0) {
        site.report('type-mismatch', `concat: the first argument must be a non-empty list of tensors, like [x, y]`, a.span);
        return ERROR;
      }
      const ts = a.ty.elements.filter((e): e is TensorTy => e.k === 'tensor');
      if (ts.length !== a.ty.elements.length) {
        if (a.ty.elements.some((e) => e.k === 'error')) return ERROR;
        site.report('type-mismatch', `concat: every element of the list must be a tensor`, a.span);
        return ERROR;
      }
      const first = ts[0]!;
      const ax = axis(site, first);
      if (ax === null) return ERROR;
      let total = first.shape.dims[ax]!;
      for (const t of ts.slice(1)) {
        const sameRank = t.shape.dims.length === first.shape.dims.length && t.shape.ellipsis === first.shape.ellipsis;
        const sameOther = sameRank && t.shape.dims.every((d, i) => i === ax || dimsEqual(d, first.shape.dims[i]!));
        if (!sameOther || t.dtype !== first.dtype) {
          site.report('concat-shape', `concat: ${formatType(first)} and ${formatType(t)} differ outside axis ${ax}`, a.span);
          return ERROR;
        }
        total = addDims(total, t.shape.dims[ax]!);
      }
      const dims = [...first.shape.dims];
      dims[ax] = total;
      return { k: 'tensor', dtype: first.dtype, shape: { ellipsis: first.shape.ellipsis, dims } };
    },
  },
  split: {
    params: [{ name: 'x' }, { name: 'parts' }, { name: 'axis', default: INT(-1) }],
    rule: (site) => {
      const t = expectTensor(site, 'x');
      const n = expectInt(site, 'parts', { min: 1 });
      if (!t || n === null) return ERROR;
      const ax = axis(site, t);
      if (ax === null) return ERROR;
      const part = splitDim(t.shape.dims[ax]!, n);
      if (isShapeError(part)) return fail(site, part);
      const dims = [...t.shape.dims];
      dims[ax] = part;
      const piece: TensorTy = { k: 'tensor', dtype: t.dtype, shape: { ellipsis: t.shape.ellipsis, dims } };
      return { k: 'tuple', elements: Array.from({ length: n }, () => piece) };
    },
  },
  expand: {
    params: [{ name: 'x' }, { name: 'shape' }],
    rule: (site) => {
      const t = expectTensor(site, 'x');
      const dims = dimList(site, 'shape');
      if (!t || !dims) return ERROR;
      const target: Shape = { ellipsis: false, dims };
      const s = broadcastShapes(t.shape, target);
      if (isShapeError(s) || s.dims.length !== dims.length || !s.dims.every((d, i) => dimsEqual(d, dims[i]!))) {
        site.report('broadcast-shape', `expand: ${formatType(t)} cannot be broadcast to [${dims.map(formatDim).join(', ')}]`, site.span);
        return ERROR;
      }
      return tensor(t.dtype, dims);
    },
  },
  gather: {
    params: [{ name: 'table' }, { name: 'ids' }],
    rule: (site) => {
      const table = expectTensor(site, 'table');
      const ids = expectTensor(site, 'ids');
      if (!table || !ids) return ERROR;
      if (ids.dtype !== 'i64' && ids.dtype !== 'i32') {
        site.report('dtype-mismatch', `gather: ids must be i64 or i32, but they are ${formatType(ids)}`, arg(site, 'ids')!.span);
        return ERROR;
      }
      if (table.shape.ellipsis || table.shape.dims.length < 1) {
        site.report('gather-shape', `gather: the table must have a known rank of at least 1, but it is ${formatType(table)}`, arg(site, 'table')!.span);
        return ERROR;
      }
      return { k: 'tensor', dtype: table.dtype, shape: { ellipsis: ids.shape.ellipsis, dims: [...ids.shape.dims, ...table.shape.dims.slice(1)] } };
    },
  },
  take_along: {
    params: [{ name: 'x' }, { name: 'ids' }],
    rule: (site) => {
      const x = expectTensor(site, 'x');
      const ids = expectTensor(site, 'ids');
      if (!x || !ids) return ERROR;
      if (ids.dtype !== 'i64' && ids.dtype !== 'i32') {
        site.report('dtype-mismatch', `take_along: ids must be i64 or i32, but they are ${formatType(ids)}`, arg(site, 'ids')!.span);
        return ERROR;
      }
      const lead: Shape = { ellipsis: x.shape.ellipsis, dims: x.shape.dims.slice(0, -1) };
      if (x.shape.dims.length === 0 || !shapesEqual(lead, ids.shape)) {
        site.report('take-along-shape', `take_along: ids ${formatType(ids)} must have the shape of x ${formatType(x)} without its last axis, ${formatShape(lead)}`, site.span);
        return ERROR;
      }
      return { k: 'tensor', dtype: x.dtype, shape: lead };
    },
  },
  causal_mask: {
    params: [{ name: 'size' }],
    rule: (site) => {
      const d = expectDim(site, 'size');
      return d ? tensor('bool', [d, d]) : ERROR;
    },
  },
  layer_norm: {
    params: [{ name: 'x' }, { name: 'weight' }, { name: 'bias' }, { name: 'eps', default: FLOAT(1e-5) }],
    rule: (site) => normRule(site, true),
  },
  rms_norm: {
    params: [{ name: 'x' }, { name: 'weight' }, { name: 'eps', default: FLOAT(1e-6) }],
    rule: (site) => normRule(site, false),
  },
  rope: {
    params: [{ name: 'x' }, { name: 'base', default: FLOAT(10000) }],
    rule: (site) => {
      const t = expectTensor(site, 'x', { float: true });
      if (!t) return ERROR;
      expectNumber(site, 'base', { min: 1 });
      const last = t.shape.dims[t.shape.dims.length - 1];
      const v = last ? constValue(last) : null;
      if (t.shape.dims.length < 2 || (v !== null && v % 2 !== 0)) {
        site.report('rope-shape', `rope: x must be f[..., T, d] with an even d, but it is ${formatType(t)}`, arg(site, 'x')!.span);
        return ERROR;
      }
      return t;
    },
  },
  dropout: {
    params: [{ name: 'x' }, { name: 'p' }],
    rule: (site) => {
      const t = expectTensor(site, 'x', { float: true });
      expectNumber(site, 'p', { min: 0, max: 1 });
      return t ?? ERROR;
    },
  },
  cast: {
    params: [{ name: 'x' }, { name: 'dtype' }],
    rule: (site) => {
      const t = expectTensor(site, 'x');
      const d = arg(site, 'dtype')!;
      if (d.ty.k === 'error' || !t) return ERROR;
      if (d.ty.k !== 'dtype') {
        site.report('type-mismatch', `cast: the second argument must be a dtype (${DTYPES.join(', ')}), but '${d.text}' is ${describeKind(d.ty)}`, d.span);
        return ERROR;
      }
      return { k: 'tensor', dtype: d.ty.dtype, shape: t.shape };
    },
  },
  cross_entropy: {
    params: [{ name: 'logits' }, { name: 'targets' }, { name: 'ignore_index', default: INT(-100) }],
    rule: (site) => {
      const logits = expectTensor(site, 'logits', { float: true });
      const targets = expectTensor(site, 'targets');
      expectInt(site, 'ignore_index');
      if (!logits || !targets) return ERROR;
      if (targets.dtype !== 'i64' && targets.dtype !== 'i32') {
        site.report('dtype-mismatch', `cross_entropy: targets must be integer class ids (i64), but they are ${formatType(targets)}`, arg(site, 'targets')!.span);
        return ERROR;
      }
      const lead: Shape = { ellipsis: logits.shape.ellipsis, dims: logits.shape.dims.slice(0, -1) };
      if (logits.shape.dims.length === 0 || !shapesEqual(lead, targets.shape)) {
        site.report(
          'cross-entropy-shape',
          `cross_entropy: targets ${formatType(targets)} must match logits ${formatType(logits)} without the class axis, ${formatShape(lead)}`,
          site.span,
        );
        return ERROR;
      }
      return tensor('f32', []);
    },
  },
  masked_mean: {
    params: [{ name: 'x' }, { name: 'mask' }],
    rule: (site) => {
      const x = expectTensor(site, 'x', { float: true });
      const m = expectTensor(site, 'mask');
      if (!x || !m) return ERROR;
      const s = broadcastShapes(x.shape, m.shape);
      if (isShapeError(s)) return fail(site, s);
      return tensor('f32', []);
    },
  },
  stack: {
    params: [{ name: 'n' }, { name: 'block' }],
    rule: (site) => {
      const n = expectDim(site, 'n');
      const m = expectModel(site, 'block');
      if (n === null || !m) return ERROR;
      if ((constValue(n) ?? 1) < 1) {
        site.report('value-out-of-range', `stack: 'n' must be at least 1, but it is ${formatDim(n)}`, arg(site, 'n')!.span);
        return ERROR;
      }
      const model = site.services.stackModel(n, m, site);
      return model ? { k: 'model', model } : ERROR;
    },
  },
  normal: initializer('normal', [{ name: 'std', default: FLOAT(0.02) }]),
  uniform: initializer('uniform', [{ name: 'bound' }]),
  zeros: initializer('zeros', []),
  ones: initializer('ones', []),
};

function normRule(site: CallSite, withBias: boolean): Ty {
  const x = expectTensor(site, 'x', { float: true });
  const w = expectTensor(site, 'weight', { float: true });
  const b = withBias ? expectTensor(site, 'bias', { float: true }) : null;
  expectNumber(site, 'eps', { min: 0, exclusiveMin: true });
  if (!x || !w || (withBias && !b)) return ERROR;
  const last = x.shape.dims[x.shape.dims.length - 1];
  for (const [name, p] of [['weight', w], ['bias', b]] as const) {
    if (!p) continue;
    if (!last || p.shape.dims.length !== 1 || p.shape.ellipsis || !dimsEqual(p.shape.dims[0]!, last)) {
      site.report('norm-shape', `${site.name}: ${name} must be [${last ? formatDim(last) : 'd'}] for x ${formatType(x)}, but it is ${formatType(p)}`, arg(site, name)!.span);
      return ERROR;
    }
  }
  return x;
}

// ---------------------------------------------------------------- recipe-level built-ins

/** How much of a data file is validated at check time. */
const DATA_CHECK_BYTES = 16 * 1024 * 1024;

const SPECIAL_TOKENS = ['pad', 'bos', 'eos', 'unk', 'sep', 'mask'];
/** The formats `jsonl(..., format: F)` accepts: those of the data schema whose rows have keys. */
const JSONL_FORMATS = Object.entries(DATASET_FORMATS).filter(([, f]) => f.requiredKeys.length > 0).map(([name]) => name);

function tokenizerRule(kind: string, base: (site: CallSite) => { size: number; alphabet?: string } | null): BuiltinSpec['rule'] {
  return (site) => {
    const specials = symbolsArg(site, 'specials');
    const duplicate = specials.find((s, i) => specials.indexOf(s) !== i);
    if (duplicate) site.report('duplicate-special', `${kind}: special token '${duplicate}' is listed twice`, arg(site, 'specials')!.span);
    const b = base(site);
    if (b === null) return ERROR;
    return { k: 'tokenizer', kind, vocab: constDim(b.size + new Set(specials).size), specials, alphabet: b.alphabet ?? null };
  };
}

const specialsParam: ParamSpec = { name: 'specials', mode: 'symbols', symbols: SPECIAL_TOKENS, default: EMPTY_LIST };

function hfVocabSize(site: CallSite): { size: number } | null {
  const path = expectStr(site, 'path');
  if (path === null) return null;
  const span = arg(site, 'path')!.span;
  const jsonPath = tokenizerJsonPath(path);
  const file = site.services.readDataFile(jsonPath, span);
  if (!file) return null;
  let json: unknown;
  try {
    json = JSON.parse(file.text);
  } catch (e) {
    site.report('bad-tokenizer-file', `hf: ${jsonPath} is not valid JSON: ${(e as Error).message}`, span);
    return null;
  }
  const size = tokenizerJsonVocabSize(json);
  if (size === null) {
    site.report('bad-tokenizer-file', `hf: ${jsonPath} has no "model.vocab" — expected a Hugging Face tokenizer.json`, span);
    return null;
  }
  // The model's own special tokens (tokenizer_config.json beside it) keep their ids.
  let own: ConfigSpecials;
  try {
    own = readConfigSpecials(file.absPath, json);
  } catch (e) {
    site.report('bad-tokenizer-file', `hf: ${(e as Error).message}`, span);
    return null;
  }
  for (const m of own.missing) {
    site.report('bad-tokenizer-file', `hf: tokenizer_config.json names ${m.key} ${JSON.stringify(m.token)}, which ${jsonPath} has no id for`, span);
  }
  for (const name of symbolsArg(site, 'specials')) {
    const mine = own.ids.get(name);
    if (mine) {
      site.report('duplicate-special', `hf: ${name} is already the tokenizer's own ${JSON.stringify(mine.token)} (id ${mine.id}, from tokenizer_config.json); listing it in specials would add a second ${name}`, arg(site, 'specials')!.span, {
        hint: `remove ${name} from specials`,
      });
    }
  }
  site.services.noteTokenizerVocab(file.absPath, size);
  return { size };
}

/** Ids a Hugging Face tokenizer.json uses: its model's vocabulary and its added tokens. Null if it has no vocabulary. */
export function tokenizerJsonVocabSize(json: unknown): number | null {
  const vocab = (json as { model?: { vocab?: unknown } } | null)?.model?.vocab;
  const size = Array.isArray(vocab) ? vocab.length : vocab && typeof vocab === 'object' ? Object.keys(vocab).length : null;
  if (size === null) return null;
  const added = (json as { added_tokens?: { id?: number }[] }).added_tokens ?? [];
  const maxAdded = added.reduce((m, t) => Math.max(m, typeof t.id === 'number' ? t.id + 1 : 0), 0);
  return Math.max(size, maxAdded);
}

function datasetRule(site: CallSite, format: string, display: string): Ty {
  const path = expectStr(site, 'path');
  const tok = arg(site, 'tokenizer');
  if (tok && tok.ty.k !== 'tokenizer' && tok.ty.k !== 'error') {
    site.report('type-mismatch', `${site.name}: 'tokenizer' must be a tokenizer, but '${tok.text}' is ${describeKind(tok.ty)}`, tok.span);
  }
  let seqLen: Dim | null = null;
  const lengthName = format === 'text' ? 'block' : 'max_len';
  if (arg(site, lengthName) && arg(site, lengthName)!.ty.k !== 'none') {
    const v = expectInt(site, lengthName, { min: 2 });
    if (v !== null) seqLen = constDim(v);
  }
  const split = arg(site, 'split') ? expectNumber(site, 'split', { min: 0, max: 1, exclusiveMin: true }) : null;
  // Tokens of a text corpus or rows of a JSONL file, when the checker read all of it and can count them.
  let units: number | null = null;
  if (path !== null) {
    // JSON lines are validated row by row, and text a chars(...) tokenizer reads is checked
    // against its alphabet (both up to a cap); otherwise a corpus is only checked to exist.
    const alphabet = tok?.ty.k === 'tokenizer' ? tok.ty.alphabet : null;
    const span = arg(site, 'path')!.span;
    const file = site.services.readDataFile(path, span, format === 'text' && alphabet === null ? 0 : DATA_CHECK_BYTES);
    const tokenizer = alphabet === null ? null : { alphabet, name: tok!.text };
    if (file && format !== 'text') units = site.services.validateJsonl(file, format, span, tokenizer);
    if (file && format === 'text' && tokenizer) {
      site.services.checkEncodable(file, [{ text: file.text, offset: 0, exact: true }], tokenizer, span);
      // A chars(...) tokenizer makes one token of each character.
      if (!file.truncated) units = [...file.text].length;
    }
  }
  const block = seqLen === null ? null : constValue(seqLen);
  const sizes = units === null || split === null ? null : format === 'text' ? (block === null ? null : textSplitSizes(units, block, split)) : rowSplitSizes(units, split);
  const t = site.services.datasetType(format, seqLen, split !== null && split < 1, display, sizes);
  const vocab = tok?.ty.k === 'tokenizer' ? constValue(tok.ty.vocab) : null;
  return t.k === 'dataset' && vocab !== null ? { ...t, tokenizerVocab: vocab } : t;
}

/**
 * `template:` of jsonl(...): a chat_template(...) for chat data only, whose strings a
 * chars(...) tokenizer must be able to encode — the default template's too, when a chat
 * dataset declares none.
 */
function checkChatTemplateArg(site: CallSite, format: string): void {
  const a = arg(site, 'template');
  const declared = a !== undefined && a.ty.k !== 'none';
  if (declared && format !== 'chat') {
    site.report('template-needs-chat', `jsonl: 'template' applies to chat data only, but this dataset's format is ${format}`, a.span, { hint: 'remove it, or use format: chat' });
    return;
  }
  if (format !== 'chat' || a?.ty.k === 'error') return;
  if (declared && (a.ty.k !== 'record' || a.ty.name !== 'chat_template')) {
    site.report('type-mismatch', `jsonl: 'template' must be a chat_template(...), but '${a.text}' is ${describeKind(a.ty)}`, a.span);
    return;
  }
  const tok = arg(site, 'tokenizer');
  const alphabet = tok?.ty.k === 'tokenizer' ? tok.ty.alphabet : null;
  if (alphabet === null) return;
  const known = new Set(alphabet);
  const missing: string[] = [];
  const where: string[] = [];
  for (const field of CHAT_TEMPLATE_FIELDS) {
    const v = declared && a.ty.k === 'record' ? a.ty.fields.get(field) : { k: 'str', value: DEFAULT_CHAT_TEMPLATE[field] };
    const text = v?.k === 'str' ? v.value : null;
    if (text === null) continue;
    const bad = [...text].filter((c) => !known.has(c));
    if (bad.length) where.push(`${field} ${JSON.stringify(text)}`);
    for (const c of bad) if (!missing.includes(c)) missing.push(c);
  }
  if (missing.length === 0) return;
  const template = declared ? 'the chat template' : 'the default chat template';
  const hint = declared
    ? 'add them to the chars(...) alphabet, or change the template'
    : 'declare a template it can encode, template: chat_template(system: ..., user: ..., assistant: ..., end: ...), or add them to the chars(...) alphabet';
  site.report(
    'unencodable-template',
    `tokenizer ${tok!.text} cannot encode ${missing.length} character${missing.length === 1 ? '' : 's'} of ${template}: ${missing.map((c) => JSON.stringify(c)).join(', ')} (in ${where.join(', ')})`,
    declared ? a.span : site.span,
    { hint },
  );
}

function optimizerSpec(name: string, params: ParamSpec[], check: (site: CallSite) => void): BuiltinSpec {
  return {
    params,
    rule: (site) => {
      check(site);
      return { k: 'optimizer', name };
    },
  };
}

function scheduleSpec(name: string, params: ParamSpec[]): BuiltinSpec {
  return {
    params,
    rule: (site) => {
      if (arg(site, 'warmup')) expectInt(site, 'warmup', { min: 0 });
      if (arg(site, 'min_lr')) expectNumber(site, 'min_lr', { min: 0 });
      return { k: 'schedule', name };
    },
  };
}

function rewardSpec(params: ParamSpec[]): BuiltinSpec {
  return {
    params,
    rule: (site) => {
      let batch: Dim = symDim('B');
      for (const p of params) {
        const a = arg(site, p.name);
        if (!a || a.ty.k === 'error') continue;
        if (a.ty.k === 'model') continue;
        if (a.ty.k !== 'tensor' || a.ty.dtype !== 'str' || a.ty.shape.dims.length !== 1) {
          site.report('type-mismatch', `${site.name}: '${p.name}' must be text per sample (str[B]), but '${a.text}' is ${describeKind(a.ty)}`, a.span);
          continue;
        }
        batch = a.ty.shape.dims[0]!;
      }
      return tensor('f32', [batch]);
    },
  };
}

/**
 * `frozen(m)` needs `m @ stage`: a plain model has no trained weights of its own to keep
 * (inside the stage that trains it, it is the live model; elsewhere, its initialisers).
 */
function reportFrozenWithoutCheckpoint(site: CallSite, m: ModelInstance): void {
  const text = arg(site, 'model')!.text;
  const name = m.origin.model;
  if (name === null) {
    site.report('frozen-needs-checkpoint', `frozen(${text}): a new model has no trained weights to freeze, only its random initial ones`, site.span, {
      hint: 'declare the model, train it in a stage, and freeze that stage\'s checkpoint: frozen(NAME @ STAGE)',
    });
    return;
  }
  const stages = site.services.checkpointStages(name, site.span);
  const hint =
    stages.length > 0
      ? `name the checkpoint to freeze: ${stages.slice(0, 3).map((s) => `frozen(${name} @ ${s})`).join(' or ')}${stages.length > 3 ? ' or …' : ''}`
      : `no earlier stage trains ${name}, so frozen(${name}) would be its random initial weights: train it in a stage that runs first, then freeze that stage's checkpoint, frozen(${name} @ STAGE)`;
  site.report('frozen-needs-checkpoint', `frozen(${text}): ${name} is not a checkpoint; frozen(...) needs one (model @ stage) to know which trained weights to keep`, site.span, { hint });
}

const recipeBuiltins: Record<string, BuiltinSpec> = {
  chars: {
    params: [{ name: 'alphabet' }, specialsParam],
    rule: tokenizerRule('chars', (site) => {
      const alphabet = expectStr(site, 'alphabet');
      if (alphabet === null) return null;
      const chars = [...alphabet];
      const dup = chars.find((c, i) => chars.indexOf(c) !== i);
      if (dup !== undefined) site.report('duplicate-character', `chars: ${JSON.stringify(dup)} appears twice in the alphabet`, arg(site, 'alphabet')!.span);
      return { size: new Set(chars).size, alphabet };
    }),
  },
  bytes: { params: [specialsParam], rule: tokenizerRule('bytes', () => ({ size: 256 })) },
  hf: { params: [{ name: 'path' }, specialsParam], rule: tokenizerRule('hf', hfVocabSize) },
  pretrained: { params: [{ name: 'path' }], rule: (site) => site.services.pretrained(site) },
  text: {
    params: [{ name: 'path' }, { name: 'tokenizer' }, { name: 'block' }, { name: 'split', default: FLOAT(1) }],
    rule: (site) => datasetRule(site, 'text', 'text'),
  },
  jsonl: {
    params: [
      { name: 'path' },
      { name: 'format', mode: 'symbol', symbols: JSONL_FORMATS },
      { name: 'tokenizer' },
      { name: 'max_len', default: { k: 'none' } },
      { name: 'split', default: FLOAT(1) },
      { name: 'template', default: { k: 'none' } },
    ],
    rule: (site) => {
      const format = symbolArg(site, 'format');
      if (!format) return ERROR;
      checkChatTemplateArg(site, format);
      return datasetRule(site, format, format);
    },
  },
  chat_template: {
    params: CHAT_TEMPLATE_FIELDS.map((name) => ({ name, default: { k: 'str', value: DEFAULT_CHAT_TEMPLATE[name] } })),
    // A record of its strings, so that jsonl(...) can check them against its tokenizer.
    rule: (site) => ({ k: 'record', name: 'chat_template', fields: new Map(CHAT_TEMPLATE_FIELDS.map((name) => [name, { k: 'str', value: expectStr(site, name) }])) }),
  },
  frozen: {
    params: [{ name: 'model' }],
    rule: (site) => {
      const m = expectModel(site, 'model');
      if (!m) return ERROR;
      // frozen(m) of a model that is not a checkpoint would be the live model inside the stage that trains m,
      // and its initial weights anywhere else; neither is a snapshot of trained weights.
      if (!m.origin.checkpoint) reportFrozenWithoutCheckpoint(site, m);
      return { k: 'model', model: { ...m, frozen: true, display: `frozen(${m.display})` } };
    },
  },
  lora: {
    params: [{ name: 'model' }, { name: 'rank', default: INT(8) }, { name: 'alpha', default: FLOAT(16) }, { name: 'targets', mode: 'symbols' }, { name: 'dropout', default: FLOAT(0) }],
    rule: (site) => {
      const m = expectModel(site, 'model');
      const rank = expectInt(site, 'rank', { min: 1 });
      expectNumber(site, 'alpha', { min: 0, exclusiveMin: true });
      expectNumber(site, 'dropout', { min: 0, max: 1 });
      if (!m || rank === null) return ERROR;
      const model = site.services.loraModel(m, symbolsArg(site, 'targets'), rank, site);
      return model ? { k: 'model', model } : ERROR;
    },
  },
  adamw: optimizerSpec(
    'adamw',
    [
      { name: 'lr' },
      { name: 'betas', default: { k: 'tuple', elements: [FLOAT(0.9), FLOAT(0.999)] } },
      { name: 'eps', default: FLOAT(1e-8) },
      { name: 'weight_decay', default: FLOAT(0.01) },
      { name: 'clip_norm', default: { k: 'none' } },
    ],
    (site) => {
      expectNumber(site, 'lr', { min: 0, exclusiveMin: true });
      expectNumber(site, 'eps', { min: 0, exclusiveMin: true });
      expectNumber(site, 'weight_decay', { min: 0 });
      if (arg(site, 'clip_norm')?.ty.k !== 'none') expectNumber(site, 'clip_norm', { min: 0, exclusiveMin: true });
      const betas = arg(site, 'betas')!;
      const ok = betas.ty.k === 'tuple' && betas.ty.elements.length === 2 && betas.ty.elements.every((b) => {
        const v = numberConst(b);
        return v !== null && v >= 0 && v < 1;
      });
      if (!ok && betas.ty.k !== 'error') site.report('value-out-of-range', `adamw: betas must be a pair of numbers in [0, 1), like (0.9, 0.95)`, betas.span);
    },
  ),
  sgd: optimizerSpec(
    'sgd',
    [{ name: 'lr' }, { name: 'momentum', default: FLOAT(0) }, { name: 'nesterov', default: BOOL(false) }, { name: 'weight_decay', default: FLOAT(0) }, { name: 'clip_norm', default: { k: 'none' } }],
    (site) => {
      expectNumber(site, 'lr', { min: 0, exclusiveMin: true });
      expectNumber(site, 'momentum', { min: 0, max: 1 });
      expectNumber(site, 'weight_decay', { min: 0 });
      const nesterov = expectBool(site, 'nesterov');
      if (nesterov && numberConst(arg(site, 'momentum')!.ty) === 0) {
        site.report('value-out-of-range', 'sgd: nesterov needs a momentum above 0', arg(site, 'nesterov')!.span);
      }
      if (arg(site, 'clip_norm')?.ty.k !== 'none') expectNumber(site, 'clip_norm', { min: 0, exclusiveMin: true });
    },
  ),
  constant: scheduleSpec('constant', [{ name: 'warmup', default: INT(0) }]),
  linear: scheduleSpec('linear', [{ name: 'warmup', default: INT(0) }, { name: 'min_lr', default: FLOAT(0) }]),
  cosine: scheduleSpec('cosine', [{ name: 'warmup', default: INT(0) }, { name: 'min_lr', default: FLOAT(0) }]),
  exact_match: rewardSpec([{ name: 'completion' }, { name: 'answer' }]),
  length: rewardSpec([{ name: 'completion' }]),
  judge: {
    params: [{ name: 'model' }, { name: 'completion' }, { name: 'prompt', default: { k: 'none' } }],
    rule: (site) => {
      expectModel(site, 'model');
      return rewardSpec([{ name: 'completion' }]).rule(site);
    },
  },
};

export const BUILTINS: Readonly<Record<string, BuiltinSpec>> = { ...tensorOps, ...recipeBuiltins };

/** Float constants usable anywhere. */
export const CONSTANTS: Readonly<Record<string, number>> = { inf: Infinity, pi: Math.PI };

export function isBuiltinName(name: string): boolean {
  return name in BUILTINS || name in CONSTANTS || (DTYPES as readonly string[]).includes(name);
}

export function dtypeOf(name: string): DType | null {
  return (DTYPES as readonly string[]).includes(name) ? (name as DType) : null;
}

