/**
 * Values of the lowering interpreter: what a recipe expression evaluates to
 * once every dimension is concrete. Tensors are IR values; everything else
 * (numbers, models, tokenizers, datasets, settings) is known at compile time.
 */
import type { BlockDecl, FnDecl } from '../../language/ast.js';
import type { ModuleInfo } from '../../check/modules.js';
import type { Value } from '../graph.js';
import type { DType } from '../tensor.js';
import type { ModelNode, ModelTemplate } from './models.js';

export type LV =
  | { readonly k: 'tensor'; readonly v: Value }
  | { readonly k: 'int'; readonly n: number }
  | { readonly k: 'float'; readonly n: number }
  | { readonly k: 'bool'; readonly b: boolean }
  | { readonly k: 'str'; readonly s: string }
  | { readonly k: 'tuple'; readonly items: readonly LV[] }
  | { readonly k: 'list'; readonly items: readonly LV[] }
  | { readonly k: 'symbol'; readonly name: string }
  | { readonly k: 'dtype'; readonly dtype: DType }
  | { readonly k: 'none' }
  /** A model description not yet given parameters (`MLP(d, 4 * d)`, `stack(...)`). */
  | { readonly k: 'template'; readonly t: ModelTemplate }
  /** A model with parameters. */
  | { readonly k: 'model'; readonly m: ModelNode }
  | { readonly k: 'block'; readonly decl: BlockDecl; readonly module: ModuleInfo }
  | { readonly k: 'fn'; readonly decl: FnDecl; readonly module: ModuleInfo }
  | { readonly k: 'builtin'; readonly name: string }
  | { readonly k: 'namespace'; readonly module: ModuleInfo }
  | { readonly k: 'record'; readonly name: string; readonly fields: ReadonlyMap<string, LV> }
  | { readonly k: 'tokenizer'; readonly spec: TokenizerSpec }
  | { readonly k: 'dataset'; readonly spec: DatasetSpec }
  /** Recipe-level calls whose meaning the stage lowering reads (`adamw(...)`, `cosine(...)`, `normal(0.02)`). */
  | { readonly k: 'call'; readonly name: string; readonly args: ReadonlyMap<string, LV> };

export interface TokenizerSpec {
  readonly kind: 'chars' | 'bytes' | 'hf';
  readonly alphabet: string | null;
  readonly specials: readonly string[];
  readonly path: string | null;
  readonly vocab: number;
}

export interface DatasetSpec {
  readonly name: string;
  readonly format: 'text' | 'prompt_completion' | 'preference' | 'chat' | 'prompts';
  /** Absolute path of the data file. */
  readonly path: string;
  readonly tokenizer: TokenizerSpec;
  /** Sequence length: `block` for text, `max_len` for JSONL (null: longest row). */
  readonly seqLen: number | null;
  readonly split: number;
  /** `train` (the default), `val`, or `prompts`. */
  readonly part: 'train' | 'val' | 'prompts';
}

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
