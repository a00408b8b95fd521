/**
 * Constant folding: a node whose inputs are all constants is evaluated at
 * compile time (reference semantics) and becomes a constant, as long as its
 * result is small — large constants would only bloat the model file.
 */
import type { Graph, Node, Value } from '../graph.js';
import { lookupOp } from '../ops/index.js';
import { sizeOf, type Tensor } from '../tensor.js';
import { rewriteGraph } from './rewrite.js';

const MAX_FOLDED_ELEMENTS = 4096;

export function foldConstants(graph: Graph): Graph {
  const known = new Map<Value, Tensor>();
  const nodes: Node[] = [];
  let nextId = Math.max(0, ...graph.nodes.flatMap((n) => n.outputs.map((o) => o.id)), ...graph.inputs.map((v) => v.id)) + 1;
  for (const n of graph.nodes) {
    if (n.op === 'constant') {
      known.set(n.outputs[0]!, n.attrs['value'] as Tensor);
      nodes.push(n);
      continue;
    }
    const args = n.inputs.map((v) => known.get(v));
    const foldable = n.inputs.length > 0 && args.every((a) => a !== undefined) && n.outputs.every((o) => sizeOf(o.shape) <= MAX_FOLDED_ELEMENTS);
    if (!foldable) {
      nodes.push(n);
      continue;
    }
    const results = lookupOp(n.op).evaluate(args as Tensor[], n.attrs);
    n.outputs.forEach((o, i) => {
      // The folded value keeps the output's identity (id, type), so later nodes need no rewiring.
      const node: Node = { id: -nextId++, op: 'constant', inputs: [], attrs: { value: { ...results[i]!, dtype: o.dtype } }, outputs: [o], scope: n.scope };
      known.set(o, results[i]!);
      nodes.push(node);
    });
  }
  return rewriteGraph(graph, nodes, new Map());
}
