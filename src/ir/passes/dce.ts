/** Dead-code elimination: drops nodes none of whose outputs reach a graph output. */
import type { Graph, Value } from '../graph.js';

export function eliminateDeadCode(graph: Graph): Graph {
  const live = new Set<Value>(graph.outputs.map((o) => o.value));
  const kept = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) continue;
    kept.push(n);
    for (const v of n.inputs) live.add(v);
  }
  return { ...graph, nodes: kept.reverse() };
}
