/**
 * A stage's model as generation graphs: its forward lowered for S new tokens of
 * B sequences, then the KV-cache derivation (inference.ts) gives the prefill
 * graph (the prompt, no cache) and the decode graph (one token after C cached
 * slots). Both take the model's parameters as inputs named as in the stage's
 * plan (`gpt.blocks.0.attn.qkv.w`), so a checkpoint feeds them unchanged.
 */
import type { ModuleInfo } from '../../check/modules.js';
import { GraphBuilder } from '../builder.js';
import type { Graph, Value } from '../graph.js';
import { deriveCachedGraph, GENERATION_IO, type CachedGraph, type CacheOptions } from './inference.js';
import { Env, Lowerer } from './interp.js';
import { modelParams, type ParamInfo } from './models.js';
import { describeLV, LoweringError } from './values.js';

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
}

/**
 * The forward of a stage's model (its target) on `tokens` i64[batch, seq], output
 * `logits`; the parameters are inputs named `<model>.<path>`.
 */
export function lowerForward(module: ModuleInfo, stageName: string, batch: number, seq: number, name = 'forward'): Graph {
  const decl = module.stages.get(stageName);
  if (!decl) throw new LoweringError(`${module.path} has no stage '${stageName}'`);
  const b = new GraphBuilder(name);
  const inputs = new Map<string, Value>();
  const lw = new Lowerer(b, (p: ParamInfo): Value => {
    const input = `${p.owner}.${p.name}`;
    let v = inputs.get(input);
    if (!v) inputs.set(input, (v = b.input(input, p.dtype, p.shape)));
    return v;
  });
  const target = lw.eval(decl.target, new Env(module));
  if (target.k !== 'model') throw new LoweringError(`stage ${decl.name.name}: the target must be a model, got ${describeLV(target)}`);
  // Every parameter is an input, used or not, in declaration order: the same list for every size.
  for (const p of modelParams(target.m)) lw.params(p);
  const tokens = b.input(GENERATION_IO.tokens, 'i64', [batch, seq]);
  const out = lw.callModel(target.m, [{ k: 'tensor', v: tokens }]);
  if (out.k !== 'tensor') throw new LoweringError(`${target.m.owner}'s forward must return a tensor`);
  b.output(GENERATION_IO.logits, out.v);
  return b.build();
}

/**
 * Whether a forward's output is next-token logits: [B, S, vocab]. The message
 * when not, for a stage that asks to generate with a model that cannot.
 */
export function logitsProblem(forward: Graph, vocab: number): string | null {
  const shape = forward.outputs.find((o) => o.name === GENERATION_IO.logits)?.value.shape ?? [];
  const tokens = forward.inputs.find((v) => v.inputName === GENERATION_IO.tokens)!.shape;
  if (shape.length === 3 && shape[0] === tokens[0] && shape[1] === tokens[1] && shape[2] === vocab) return null;
  return `its output is [${shape.join(', ')}], not next-token logits [batch, length, ${vocab}]`;
}

/** The generation graphs of a stage's model (its target), lowered on demand. */
export function stageGraphSource(module: ModuleInfo, stageName: string, present: CacheOptions['present'] = 'new'): GenerationGraphSource {
  return {
    prefill: (batch, length) => deriveCachedGraph(lowerForward(module, stageName, batch, length, 'prefill'), { past: 0, present }),
    decode: (batch, past) => deriveCachedGraph(lowerForward(module, stageName, batch, 1, 'decode'), { past, present }),
    forward: (batch, length) => lowerForward(module, stageName, batch, length),
  };
}
