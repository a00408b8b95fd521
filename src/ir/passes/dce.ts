/** Dead-code elimination: drops nodes none of whose outputs reach a graph output. */
import type { Graph, Node, Value } from '../graph.js';
import { rewriteGraph } from './rewrite.js';

export function eliminateDeadCode(graph: Graph): Graph {
  const live = new Set<Value>(graph.outputs.map((o) => o.value));
  const liveNodes = new Set<Node>();
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) continue;
    liveNodes.add(n);
    for (const v of n.inputs) live.add(v);
  }
  return rewriteGraph(graph, 'dce', (n) => (liveNodes.has(n) ? undefined : 'drop'));
}
