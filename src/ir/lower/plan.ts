/**
 * What lowering a stage produces, whatever its kind: a StagePlan names its
 * graphs, its parameters (trainable or frozen, and where each one's weights
 * come from), its optimizer state, which outputs feed which inputs at the next
 * step, and the data its graphs read. The manifest written beside the ONNX
 * files is this plan serialised, with each graph replaced by its file entry.
 */
import type { Graph } from '../graph.js';
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

export interface StagePlan<Settings = unknown> {
  /** The stage kind (`train`, `rl`, …): which module in src/stages/ runs it. */
  readonly kind: string;
  readonly stage: string;
  /** The recipe-level model the stage works on. */
  readonly model: string;
  readonly graphs: Readonly<Record<string, Graph>>;
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
