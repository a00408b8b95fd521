/**
 * Rebuilding a graph after a pass: keep some nodes, replace some values by
 * others. Values keep their ids, so the textual form stays comparable.
 */
import type { Graph, Node, Value } from '../graph.js';

export function rewriteGraph(graph: Graph, keep: readonly Node[], replace: ReadonlyMap<Value, Value>): Graph {
  const sub = (v: Value): Value => {
    let r = v;
    while (replace.has(r)) r = replace.get(r)!;
    return r;
  };
  const nodes = keep.map((n) => (n.inputs.some((v) => replace.has(v)) ? { ...n, inputs: n.inputs.map(sub) } : n));
  return { ...graph, nodes, outputs: graph.outputs.map((o) => ({ name: o.name, value: sub(o.value) })) };
}
