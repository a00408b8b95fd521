/**
 * What lowering a stage produces, whatever its kind: a StagePlan names its
 * graphs, its parameters (trainable or frozen, and where each one's weights
 * come from), its optimizer state, which outputs feed which inputs at the next
 * step, and the data its graphs read. The manifest written beside the ONNX
 * files is this plan serialised, with each graph replaced by its file entry.
 */
import type { Graph } from '../graph.js';
import type { SymbolicDims } from '../symbolic.js';
import type { DType } from '../tensor.js';
import type { DatasetSpec, Init } from './types.js';

export interface PlannedParam {
  /** Graph input name: `<model>.<path>`, e.g. `gpt.blocks.0.attn.qkv.w`. */
  readonly input: string;
  readonly model: string;
  /** Name inside the model (and in its safetensors checkpoint). */
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly init: Exclude<Init, { kind: 'copy' }> | { readonly kind: 'copy'; readonly from: string };
  readonly trainable: boolean;
  /** Weight decay applies (from the parameter's declaration; only trainable parameters decay). */
  readonly decay: boolean;
}

/** One optimizer-state input: slot `slot` (m, v, momentum) of parameter `param`. */
export interface StatePlan {
  readonly input: string;
  readonly param: string;
  readonly slot: string;
  readonly shape: readonly number[];
}

/** One batch field as a graph input: its name in the graph, its field in the data schema, dtype and concrete shape. */
export interface BatchField {
  readonly input: string;
  readonly field: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** A dataset the stage's graphs read, with the inputs its batches fill. */
export interface DataInput {
  readonly spec: DatasetSpec;
  readonly fields: readonly BatchField[];
}

/** K runs of one graph in one call: the graph as the body of an ONNX Loop (see targets/onnx/loop.ts). */
export interface LoopPlan {
  /** The graph that is the loop body, and the name of the loop model. */
  readonly body: string;
  readonly name: string;
  /** The data whose batches are stacked, one per iteration. */
  readonly data: string;
  /** Scalar outputs of each iteration, collected into `all.<name>`. */
  readonly scanOutputs: readonly string[];
}

/** One attention block's cache, as the generation graphs name it. */
export interface CacheEntry {
  /** The attention block's scope: `gpt.blocks.0.attn`. */
  readonly block: string;
  /** Decode-graph inputs: the cached keys and values, [batch, kv_heads, past_sequence, head_dim]. */
  readonly pastKey: string;
  readonly pastValue: string;
  /** Outputs of both graphs: the new tokens' keys and values, [batch, kv_heads, sequence, head_dim]. */
  readonly presentKey: string;
  readonly presentValue: string;
  /** [kv_heads, head_dim]. */
  readonly heads: number;
  readonly headDim: number;
}

/**
 * How a stage's model generates (the `prefill` and `decode` graphs, dynamic batch
 * and lengths): prefill runs the prompts (tokens, positions, attention_mask: all
 * [batch, sequence]) → logits and each block's keys and values; decode runs one
 * token per sequence after `past_sequence` cached slots (attention_mask
 * [batch, past_sequence + 1]). A runtime keeps the cache and writes each step's
 * present keys and values into it (see src/ir/lower/inference.ts).
 */
export interface GenerationPlan {
  readonly prefill: string;
  readonly decode: string;
  /** Input and output names. */
  readonly tokens: string;
  readonly positions: string;
  readonly attentionMask: string;
  readonly logits: string;
  /** Per attention block, in the order of the forward. */
  readonly cache: readonly CacheEntry[];
  /** Positions must stay below this (position tables, rope tables). */
  readonly maxPositions: number;
}

export interface StagePlan<Settings = unknown> {
  /** The stage kind (`train`, `rl`, …): which module in src/stages/ runs it. */
  readonly kind: string;
  readonly stage: string;
  /** The recipe-level model the stage works on. */
  readonly model: string;
  readonly graphs: Readonly<Record<string, Graph>>;
  /** Graphs emitted with dynamic sizes (by graph name): their symbolic dimensions. Not in the manifest. */
  readonly dims?: Readonly<Record<string, SymbolicDims>>;
  /** How the stage's model generates, when it outputs next-token logits. */
  readonly generation?: GenerationPlan | null;
  readonly params: readonly PlannedParam[];
  readonly state: readonly StatePlan[];
  /** Output → the input it feeds at the next step. */
  readonly feedback: Readonly<Record<string, string>>;
  /** Data by role (`train`, `eval`, …). */
  readonly data: Readonly<Record<string, DataInput>>;
  readonly loop: LoopPlan | null;
  /** What the kind's runtime needs besides the graphs (steps, batch size, optimizer, …). */
  readonly settings: Settings;
}
