/** A model's forward as a graph of its own: what inference, generation, calibration and pruning analyse. */
import { GraphBuilder } from '../builder.js';
import type { Graph, Value } from '../graph.js';
import { GENERATION_IO } from './inference.js';
import { Lowerer } from './interp.js';
import { modelParams, type ModelNode, type ParamInfo } from './models.js';
import { LoweringError } from './values.js';

/**
 * The forward of `model` on `tokens` i64[batch, seq], output `logits`; its
 * parameters are inputs `<model>.<path>`, all of them (used or not), in declaration
 * order: the same list for every size.
 */
export function lowerModelForward(model: ModelNode, batch: number, seq: number, name = 'forward'): Graph {
  const b = new GraphBuilder(name);
  const inputs = new Map<string, Value>();
  const lw = new Lowerer(b, (p: ParamInfo): Value => {
    const input = `${p.owner}.${p.name}`;
    let v = inputs.get(input);
    if (!v) inputs.set(input, (v = b.input(input, p.dtype, p.shape)));
    return v;
  });
  for (const p of modelParams(model)) lw.params(p);
  const tokens = b.input(GENERATION_IO.tokens, 'i64', [batch, seq]);
  const out = lw.callModel(model, [{ k: 'tensor', v: tokens }]);
  if (out.k !== 'tensor') throw new LoweringError(`${model.owner}'s forward must return a tensor`);
  b.output(GENERATION_IO.logits, out.v);
  return b.build();
}
