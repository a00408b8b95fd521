/**
 * Constant folding: a node whose inputs are all constants is evaluated at
 * compile time (reference semantics) and becomes a constant, as long as its
 * result is small — large constants would only bloat the model file.
 */
import type { Graph, Value } from '../graph.js';
import { lookupOp } from '../ops/index.js';
import { sizeOf, type Tensor } from '../tensor.js';
import { rewriteGraph } from './rewrite.js';

const MAX_FOLDED_ELEMENTS = 4096;

export function foldConstants(graph: Graph): Graph {
  // The value of every constant in the new graph.
  const known = new Map<Value, Tensor>();
  return rewriteGraph(graph, 'const-fold', (n, rw) => {
    if (n.op === 'constant') {
      const [out] = rw.keep(n);
      // Its value as the reference evaluates it (an f16 constant holds f16-rounded values).
      known.set(out!, lookupOp('constant').evaluate([], n.attrs)[0]!);
      return undefined;
    }
    const args = n.inputs.map((v) => known.get(rw.value(v)));
    const foldable = n.inputs.length > 0 && args.every((a) => a !== undefined) && n.outputs.every((o) => sizeOf(o.shape) <= MAX_FOLDED_ELEMENTS);
    if (!foldable) return undefined;
    const results = lookupOp(n.op).evaluate(args as Tensor[], n.attrs);
    // The constants replace the node's outputs (with its scope and provenance); its inputs stay for DCE.
    return n.outputs.map((o, i) => {
      const value: Tensor = { ...results[i]!, dtype: o.dtype };
      const c = rw.b.constant(value);
      known.set(c, value);
      return c;
    });
  });
}
