/**
 * The checker's types. Compile-time constants (dims, numbers, strings) carry
 * their value when known, so that `where d % heads == 0` can be evaluated and
 * `reshape(x, [B, T, heads, d / heads])` can be checked.
 */
import type { BlockDecl, DatasetDecl, FnDecl, Span, StageDecl } from '../language/ast.js';
import type { DatasetFormat } from './dataSchema.js';
import { constValue, dimsEqual, formatDim, type Dim } from './dims.js';
import type { SplitSizes } from './splits.js';

export type DType = 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'bool' | 'str';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i64', 'i32', 'bool', 'str'];
export const FLOAT_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16'];

/** A tensor shape. `ellipsis` stands for zero or more unknown leading dimensions. */
export interface Shape {
  readonly ellipsis: boolean;
  readonly dims: readonly Dim[];
}

export interface TensorTy {
  readonly k: 'tensor';
  readonly dtype: DType;
  readonly shape: Shape;
}

/** An integer known at compile time (a dimension, a count, an axis); `value` may be symbolic. */
export interface IntTy {
  readonly k: 'int';
  readonly value: Dim | null;
}

export interface FloatTy {
  readonly k: 'float';
  readonly value: number | null;
}

export interface BoolTy {
  readonly k: 'bool';
  readonly value: boolean | null;
}

export interface StrTy {
  readonly k: 'str';
  readonly value: string | null;
}

export interface TupleTy {
  readonly k: 'tuple';
  readonly elements: readonly Ty[];
}

export interface ListTy {
  readonly k: 'list';
  readonly elements: readonly Ty[];
}

/** A bare name that denotes a value from a fixed set (`int8`, `prompt_completion`, `pad`). */
export interface SymbolTy {
  readonly k: 'symbol';
  readonly name: string;
}

/** A member of a model: a parameter tensor or a submodule. */
export type ModelMember = { readonly k: 'param'; readonly type: TensorTy } | { readonly k: 'submodule'; readonly model: ModelInstance };

/** Where a model's initial weights come from when it is a checkpoint `m @ stage`. */
export interface CheckpointRef {
  readonly model: string;
  readonly stage: string;
  readonly span: Span;
}

/** An instantiated model: a block with its arguments bound. */
export interface ModelInstance {
  /** Text shown to users: `Transformer(vocab: 21, ctx: 64, ...)`. */
  readonly display: string;
  /** Signature of the forward pass; `call` types a call against it. */
  readonly forward: ForwardSignature | null;
  readonly members: ReadonlyMap<string, ModelMember>;
  /** Block arguments readable as members (`base.dim`). */
  readonly args: ReadonlyMap<string, Ty>;
  /** Number of parameters (trainable or not), when known. */
  readonly paramCount: Dim;
  readonly frozen: boolean;
  /** The recipe-level model this one is a copy of, and the stage whose checkpoint it starts from. */
  readonly origin: { readonly model: string | null; readonly checkpoint: CheckpointRef | null };
  /** Checkpoints this model's weights depend on (its own and those of models it wraps). */
  readonly checkpoints: readonly CheckpointRef[];
  /** Names of submodules LoRA adapters are attached to, when this is a LoRA model. */
  readonly lora: readonly string[] | null;
}

/** A forward pass: parameter types over free symbols (B, T, …) and a return type over them. */
export interface ForwardSignature {
  readonly params: readonly { readonly name: string; readonly type: Ty }[];
  readonly returns: Ty;
  /** Symbols bound per call (not block arguments). */
  readonly free: ReadonlySet<string>;
  /** Checks the forward's `where` clause for one call's bindings; returns the violated constraints as text. */
  readonly checkWhere: ((bindings: ReadonlyMap<string, Dim>) => string[]) | null;
  /** Span of the forward declaration, for notes. */
  readonly span: Span | null;
}

export interface ModelTy {
  readonly k: 'model';
  readonly model: ModelInstance;
}

export interface BlockTy {
  readonly k: 'block';
  readonly decl: BlockDecl;
  readonly module: string;
}

export interface FnTy {
  readonly k: 'fn';
  readonly decl: FnDecl;
  readonly module: string;
}

export interface BuiltinTy {
  readonly k: 'builtin';
  readonly name: string;
}

export interface TokenizerTy {
  readonly k: 'tokenizer';
  readonly kind: string;
  readonly vocab: Dim;
  readonly specials: readonly string[];
  /** The characters a `chars(...)` tokenizer can encode; null for byte-level and file tokenizers. */
  readonly alphabet: string | null;
}

export type { DatasetFormat } from './dataSchema.js';

export interface DatasetTy {
  readonly k: 'dataset';
  readonly format: DatasetFormat;
  /** The fields of one batch, with `B` for the batch size. */
  readonly fields: ReadonlyMap<string, Ty>;
  readonly splits: boolean;
  /** Training and validation examples, when the checker read the whole file and knows its tokenizer (see splits.ts). */
  readonly sizes?: SplitSizes | null;
  /** How many token ids its tokenizer makes (specials included), when known. */
  readonly tokenizerVocab?: number | null;
  readonly display: string;
  /** The generate stage that writes this dataset, when it is a stage's output. */
  readonly producedBy: string | null;
  readonly decl: DatasetDecl | null;
}

export interface StageTy {
  readonly k: 'stage';
  readonly decl: StageDecl;
}

export interface ModuleTy {
  readonly k: 'module';
  readonly path: string;
}

export interface OptimizerTy {
  readonly k: 'optimizer';
  readonly name: string;
}

export interface ScheduleTy {
  readonly k: 'schedule';
  readonly name: string;
}

export interface InitializerTy {
  readonly k: 'initializer';
  readonly name: string;
}

export interface DTypeTy {
  readonly k: 'dtype';
  readonly dtype: DType;
}

/** A batch of a dataset: named fields. */
export interface RecordTy {
  readonly k: 'record';
  readonly name: string;
  readonly fields: ReadonlyMap<string, Ty>;
}

/** An optional block member whose condition is false: `x + b` is `x`. */
export interface NoneTy {
  readonly k: 'none';
}

/** The type of an expression that already produced a diagnostic; it never produces another. */
export interface ErrorTy {
  readonly k: 'error';
}

export type Ty =
  | TensorTy
  | IntTy
  | FloatTy
  | BoolTy
  | StrTy
  | TupleTy
  | ListTy
  | SymbolTy
  | ModelTy
  | BlockTy
  | FnTy
  | BuiltinTy
  | TokenizerTy
  | DatasetTy
  | StageTy
  | ModuleTy
  | OptimizerTy
  | ScheduleTy
  | InitializerTy
  | DTypeTy
  | RecordTy
  | NoneTy
  | ErrorTy;

export const ERROR: ErrorTy = { k: 'error' };
export const NONE: NoneTy = { k: 'none' };

export function tensor(dtype: DType, dims: readonly Dim[], ellipsis = false): TensorTy {
  return { k: 'tensor', dtype, shape: { ellipsis, dims } };
}

export function formatShape(shape: Shape): string {
  const dims = shape.dims.map(formatDim);
  return `[${(shape.ellipsis ? ['...', ...dims] : dims).join(', ')}]`;
}

/** A type as users write it: `f32[B, T, 64]`, `dim = 128`, `model Transformer(...)`. */
export function formatType(t: Ty): string {
  switch (t.k) {
    case 'tensor':
      return `${t.dtype}${formatShape(t.shape)}`;
    case 'int':
      return t.value === null ? 'int' : `int = ${formatDim(t.value)}`;
    case 'float':
      return t.value === null ? 'float' : `float = ${t.value}`;
    case 'bool':
      return t.value === null ? 'bool' : `bool = ${t.value}`;
    case 'str':
      return t.value === null ? 'str' : `str = ${JSON.stringify(t.value)}`;
    case 'tuple':
      return `(${t.elements.map(formatType).join(', ')})`;
    case 'list':
      return `[${t.elements.map(formatType).join(', ')}]`;
    case 'symbol':
      return t.name;
    case 'model':
      return `model ${t.model.display}`;
    case 'block':
      return `block ${t.decl.name.name}`;
    case 'fn':
      return `fn ${t.decl.name.name}`;
    case 'builtin':
      return `built-in ${t.name}`;
    case 'tokenizer':
      return `tokenizer ${t.kind} (vocab ${formatDim(t.vocab)})`;
    case 'dataset':
      return `dataset ${t.display}`;
    case 'stage':
      return `stage ${t.decl.name.name}`;
    case 'module':
      return `module ${t.path}`;
    case 'optimizer':
      return `optimizer ${t.name}`;
    case 'schedule':
      return `schedule ${t.name}`;
    case 'initializer':
      return `initializer ${t.name}`;
    case 'dtype':
      return `dtype ${t.dtype}`;
    case 'record':
      return `{ ${[...t.fields].map(([k, v]) => `${k}: ${formatType(v)}`).join(', ')} }`;
    case 'none':
      return 'none';
    case 'error':
      return '<error>';
  }
}

/** What kind of thing a type is, for messages: "a tensor", "a model", "a dataset". */
export function describeKind(t: Ty): string {
  switch (t.k) {
    case 'tensor':
      return t.shape.dims.length === 0 && !t.shape.ellipsis ? `a scalar ${t.dtype}` : `a tensor ${formatType(t)}`;
    case 'int':
      return 'an integer';
    case 'float':
      return 'a number';
    case 'bool':
      return 'a boolean';
    case 'str':
      return 'a string';
    case 'tuple':
      return `a tuple of ${t.elements.length}`;
    case 'list':
      return 'a list';
    case 'symbol':
      return `the name '${t.name}'`;
    case 'model':
      return `a model (${t.model.display})`;
    case 'block':
      return `the block '${t.decl.name.name}' (instantiate it first)`;
    case 'fn':
      return `the function '${t.decl.name.name}'`;
    case 'builtin':
      return `the built-in '${t.name}'`;
    case 'tokenizer':
      return 'a tokenizer';
    case 'dataset':
      return 'a dataset';
    case 'stage':
      return `the stage '${t.decl.name.name}'`;
    case 'module':
      return `the module '${t.path}'`;
    case 'optimizer':
      return 'an optimizer';
    case 'schedule':
      return 'a schedule';
    case 'initializer':
      return 'an initializer';
    case 'dtype':
      return 'a dtype';
    case 'record':
      return `a ${t.name}`;
    case 'none':
      return 'an absent optional member';
    case 'error':
      return 'an erroneous value';
  }
}

export function isScalarTensor(t: Ty): boolean {
  return t.k === 'tensor' && !t.shape.ellipsis && t.shape.dims.length === 0;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.ellipsis === b.ellipsis && a.dims.length === b.dims.length && a.dims.every((d, i) => dimsEqual(d, b.dims[i]!));
}

/** The integer value of an int type, when it is a known constant. */
export function intConst(t: Ty): number | null {
  if (t.k !== 'int' || t.value === null) return null;
  const v = constValue(t.value);
  return v !== null && Number.isInteger(v) ? v : null;
}

/** The numeric value of an int or float constant. */
export function numberConst(t: Ty): number | null {
  if (t.k === 'float') return t.value;
  if (t.k === 'int' && t.value) return constValue(t.value);
  return null;
}
