/**
 * A stage's model as generation graphs: its forward lowered for S new tokens of
 * B sequences, then the KV-cache derivation (inference.ts) gives the prefill
 * graph (the prompt, no cache) and the decode graph (one token after C cached
 * slots). Both take the model's parameters as inputs named as in the stage's
 * plan (`gpt.blocks.0.attn.qkv.w`), so a checkpoint feeds them unchanged.
 */
import type { ModuleInfo } from '../../check/modules.js';
import type { Graph } from '../graph.js';
import { optimize } from '../passes/index.js';
import { symbolicDims, type SymbolicDims } from '../symbolic.js';
import { IrError } from '../graph.js';
import { deriveCachedGraph, GENERATION_IO, type CachedGraph, type CacheOptions } from './inference.js';
import type { GenerationPlan } from './plan.js';
import { lowerModelForward } from './forward.js';
import { declaredTarget, modelAfterPruning } from './pruning.js';
import type { ModelNode } from './models.js';
import { LoweringError } from './values.js';

/**
 * A model's generation graphs at any sizes: what the runtime's generator asks
 * for as it learns the batch and the prompt lengths.
 */
export interface GenerationGraphSource {
  /** The prompt: `batch` sequences of `length` tokens, no cache. */
  prefill(batch: number, length: number): CachedGraph;
  /** One token per sequence after `past` cache slots. */
  decode(batch: number, past: number): CachedGraph;
  /** The plain forward on [batch, length] tokens (the reference without a cache). */
  forward(batch: number, length: number): Graph;
  /** Whether prefill and decode return graphs of dynamic sizes (one graph for every batch and length). */
  readonly dynamic?: boolean;
}

/**
 * The forward of a stage's model (its target) on `tokens` i64[batch, seq], output
 * `logits`; the parameters are inputs named `<model>.<path>`.
 */
export function lowerForward(module: ModuleInfo, stageName: string, batch: number, seq: number, name = 'forward'): Graph {
  const decl = module.stages.get(stageName);
  if (!decl) throw new LoweringError(`${module.path} has no stage '${stageName}'`);
  // A model that went through prune stages generates with its smaller shapes.
  return lowerModelForward(modelAfterPruning(module, decl, declaredTarget(module, decl)), batch, seq, name);
}

/** The shape of a forward's `logits` output (next-token logits are [B, S, vocab]); null when it has none. */
export function logitsShape(forward: Graph): readonly number[] | null {
  return forward.outputs.find((o) => o.name === GENERATION_IO.logits)?.value.shape ?? null;
}

/** The generation graphs of a stage's model (its target), lowered on demand. */
export function stageGraphSource(module: ModuleInfo, stageName: string, present: CacheOptions['present'] = 'new'): GenerationGraphSource {
  return {
    prefill: (batch, length) => deriveCachedGraph(lowerForward(module, stageName, batch, length, 'prefill'), { past: 0, present }),
    decode: (batch, past) => deriveCachedGraph(lowerForward(module, stageName, batch, 1, 'decode'), { past, present }),
    forward: (batch, length) => lowerForward(module, stageName, batch, length),
  };
}

/** A generation graph with dynamic sizes: the graph at one set of sample sizes, optimised, and its symbolic dimensions. */
export interface DynamicGraph extends CachedGraph {
  readonly dims: SymbolicDims;
}

/**
 * A stage's generation graphs with dynamic sizes: one prefill and one decode graph
 * serve every batch, prompt length and cache length (lowered once, on first use).
 */
export function dynamicGraphSource(module: ModuleInfo, stageName: string, positionLimit: number): GenerationGraphSource {
  let graphs: { prefill: DynamicGraph; decode: DynamicGraph } | null = null;
  const get = () => (graphs ??= dynamicGenerationGraphs(module, stageName, positionLimit));
  return {
    prefill: () => get().prefill,
    decode: () => get().decode,
    forward: (batch, length) => lowerForward(module, stageName, batch, length),
    dynamic: true,
  };
}

/** The dim_param names of generation graphs. */
export const GENERATION_DIMS = { batch: 'batch', sequence: 'sequence', past: 'past_sequence' } as const;

/**
 * Sizes of the three lowerings a dynamic graph is solved from: distinct for each
 * symbol (so no dimension of one can pass for another's), at least 2 (a size-1 axis
 * lowers differently), and small (a model with 8 positions still fits).
 */
const SAMPLE_SIZES = { batch: [2, 3, 5], sequence: [3, 5, 7], past: [4, 6, 9] } as const;

/**
 * The prefill and decode graphs of a stage's model with dynamic batch, prompt and
 * cache lengths (ONNX dim_params `batch`, `sequence`, `past_sequence`), already
 * optimised. Positions must stay below `positionLimit` (the rows of rope's tables).
 */
export function dynamicGenerationGraphs(module: ModuleInfo, stageName: string, positionLimit: number, present: CacheOptions['present'] = 'new'): { prefill: DynamicGraph; decode: DynamicGraph } {
  const { batch, sequence, past } = SAMPLE_SIZES;
  const solved = (graphs: CachedGraph[], symbols: Parameters<typeof symbolicDims>[1]): DynamicGraph => {
    const optimized = graphs.map((g) => optimize(g.graph).graph) as [Graph, Graph, Graph];
    return { ...graphs[0]!, graph: optimized[0], dims: symbolicDims(optimized, symbols) };
  };
  const prefill = solved(
    [0, 1, 2].map((k) => deriveCachedGraph(lowerForward(module, stageName, batch[k]!, sequence[k]!, 'prefill'), { past: 0, present, positionLimit })),
    [
      { name: GENERATION_DIMS.batch, values: batch },
      { name: GENERATION_DIMS.sequence, values: sequence },
    ],
  );
  const decode = solved(
    [0, 1, 2].map((k) => deriveCachedGraph(lowerForward(module, stageName, batch[k]!, 1, 'decode'), { past: past[k]!, present, positionLimit })),
    [
      { name: GENERATION_DIMS.batch, values: batch },
      { name: GENERATION_DIMS.past, values: past },
    ],
  );
  return { prefill, decode };
}

/** What a stage plan gains for generation: the two graphs, their dimensions, the plan entry. */
export interface PlannedGeneration {
  readonly graphs: { readonly prefill: Graph; readonly decode: Graph };
  readonly dims: { readonly prefill: SymbolicDims; readonly decode: SymbolicDims };
  readonly plan: GenerationPlan;
}

/**
 * The generation graphs of a stage's model, for its plan, when the model outputs
 * next-token logits over `vocab` and its attention can be cached; null otherwise
 * (a reward model, or attention the derivation does not recognise: such a model
 * still generates by recomputing its forward).
 */
export function planGeneration(module: ModuleInfo, stageName: string, model: ModelNode, vocab: number, positionLimit: number): PlannedGeneration | null {
  const shape = logitsShape(lowerModelForward(model, 1, 1));
  if (shape?.length !== 3 || shape[2] !== vocab) return null;
  let graphs;
  try {
    graphs = dynamicGenerationGraphs(module, stageName, positionLimit);
  } catch (e) {
    // Generation graphs are an extra of the plan: a model they cannot be derived for still trains.
    if (e instanceof IrError || e instanceof LoweringError) return null;
    throw e;
  }
  const { prefill, decode } = graphs;
  return {
    graphs: { prefill: prefill.graph, decode: decode.graph },
    dims: { prefill: prefill.dims, decode: decode.dims },
    plan: {
      prefill: 'prefill',
      decode: 'decode',
      tokens: GENERATION_IO.tokens,
      positions: GENERATION_IO.positions,
      attentionMask: GENERATION_IO.mask,
      logits: GENERATION_IO.logits,
      cache: prefill.sites.map((s) => ({
        block: s.block,
        pastKey: s.pastKey,
        pastValue: s.pastValue,
        presentKey: s.presentKey,
        presentValue: s.presentValue,
        heads: s.keyShape.slice(1, -2).reduce((a, b) => a * b, 1),
        headDim: s.keyShape[s.keyShape.length - 1]!,
      })),
      maxPositions: Math.min(positionLimit, prefill.maxPositions ?? Infinity),
    },
  };
}

/** The most positions a model takes: its `ctx` argument when it has one (std.nn's models do), else `fallback` (the stage's sequence length). */
export function modelContext(model: ModelNode, fallback: number): number {
  const ctx = model.args.get('ctx');
  return ctx?.k === 'int' && ctx.n > 0 ? ctx.n : fallback;
}
