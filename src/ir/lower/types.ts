/**
 * The types the lowering modules share: interpreter values (LV), models and
 * their parameters, tokenizer and dataset specs, and what a tensor built-in
 * needs from the interpreter. A leaf module (types only), so that values.ts,
 * models.ts, interp.ts and builtins.ts can all use them without importing
 * each other in a cycle.
 */
import type { BlockDecl, FnDecl, ForwardMember } from '../../language/ast.js';
import type { ModuleInfo } from '../../check/modules.js';
import type { ChatTemplate } from '../../check/chatTemplate.js';
import type { GraphBuilder } from '../builder.js';
import type { Value } from '../graph.js';
import type { DType } from '../tensor.js';

/** What a recipe expression evaluates to during lowering. */
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
  /** A stage, as a value: only its `output` (a generate stage's dataset) is readable. */
  | { readonly k: 'stage'; readonly name: string; readonly module: ModuleInfo }
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
  /** How a chat dataset's messages are rendered (its `template:`, or the default); null for other formats. */
  readonly chatTemplate: ChatTemplate | null;
  /**
   * The generate stage that writes this data (`NAME.output`), else null. Its file is the
   * stage's `out`, or, when `path` is empty, found in the run folder at run time.
   */
  readonly producedBy: string | null;
}

export type ModelTemplate =
  | { readonly k: 'block'; readonly decl: BlockDecl; readonly module: ModuleInfo; readonly args: ReadonlyMap<string, LV> }
  | { readonly k: 'stack'; readonly n: number; readonly inner: ModelTemplate };

export type Init =
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'uniform'; readonly bound: number }
  | { readonly kind: 'zeros' }
  | { readonly kind: 'ones' }
  /** Starts from another model's initial value (a head built on a model with no checkpoint). */
  | { readonly kind: 'copy'; readonly from: ParamInfo }
  /** Starts from a stage's final checkpoint of a model (`policy @ sft`, or the stage a model was last trained in). */
  | { readonly kind: 'checkpoint'; readonly model: string; readonly stage: string; readonly name: string }
  /**
   * Starts from tensor `tensor` of the Hugging Face checkpoint in folder `dir` (`pretrained("DIR")`),
   * transposed when the file keeps [out, in]; `tensor` is null when the folder has no weights.
   */
  | { readonly kind: 'pretrained'; readonly dir: string; readonly tensor: string | null; readonly transposed: boolean };

export interface ParamInfo {
  /** Relative to its recipe-level model: `blocks.0.attn.qkv.w`. */
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly init: Init;
  /** The recipe-level model it belongs to. */
  readonly owner: string;
  /** A LoRA adapter matrix: the only parameters a LoRA model trains. */
  readonly adapter?: boolean;
  /**
   * Whether AdamW/SGD weight decay applies: fixed by the declaration (the
   * initialiser's `decay:`, else true for two or more axes), the same in every stage.
   */
  readonly decay: boolean;
}

export type Member = { readonly k: 'param'; readonly p: ParamInfo } | { readonly k: 'model'; readonly m: ModelNode } | { readonly k: 'none' };

export interface ModelNode {
  readonly path: string;
  readonly owner: string;
  readonly kind: 'block' | 'stack';
  readonly decl: BlockDecl | null;
  readonly module: ModuleInfo | null;
  readonly args: ReadonlyMap<string, LV>;
  readonly members: ReadonlyMap<string, Member>;
  readonly forward: ForwardMember | null;
  readonly copies: readonly ModelNode[];
  readonly frozen: boolean;
  /** The stage whose checkpoint this model starts from (`gpt @ sft`), if any. */
  readonly checkpoint: string | null;
  /** LoRA on this submodule: its output gains scale · (x @ lora_a) @ lora_b (members of the same names). */
  readonly adapter?: { readonly scale: number; readonly dropout: number };
  /** A LoRA model: only adapter matrices are trained. */
  readonly adapted?: boolean;
  /** The Hugging Face checkpoint folder this model was read from (`pretrained("DIR")`), absolute. */
  readonly pretrained?: string;
}

/** What a tensor built-in (`builtins.ts`) needs from the interpreter that calls it. */
/** Supplies the divisor of each batch mean in evaluation order (see TensorBuiltinHost.batchMeans). */
export interface BatchMeanDivisors {
  /** `localCount` (f32 scalar) is what this mean would divide by on its own; returns what it divides by. */
  divisor(localCount: Value): Value;
}

export interface TensorBuiltinHost {
  readonly b: GraphBuilder;
  /** Per-step seed (i64 scalar) for dropout; null in graphs without randomness. */
  readonly seed: Value | null;
  /** Counts dropout sites so each gets its own seed offset. */
  dropoutSites: number;
  /**
   * With gradient accumulation, the divisor of every batch mean (`mean`,
   * `masked_mean`, `cross_entropy`) is the full batch's count, not the
   * micro-batch's, so the k micro-batch losses add up to the full-batch loss.
   * Null: a mean divides by its own count.
   */
  readonly batchMeans: BatchMeanDivisors | null;
  /** A tensor LV's value, or a number made a constant of dtype `like`. */
  asTensor(v: LV, like?: DType): Value;
}
