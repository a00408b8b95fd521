/**
 * The reference evaluator: runs a graph with each op's float64 reference
 * semantics. Slow and exact; used by gradcheck and by tests that compare the
 * ONNX lowering against it.
 */
import { IrError, type Graph, type Value } from './graph.js';
import { lookupOp } from './ops/index.js';
import { formatShapeList, sameShape, type Tensor } from './tensor.js';

/** Evaluates every value of the graph; `feeds` maps input names to tensors. */
export function evaluateValues(graph: Graph, feeds: ReadonlyMap<string, Tensor>): Map<Value, Tensor> {
  const env = new Map<Value, Tensor>();
  for (const input of graph.inputs) {
    const t = feeds.get(input.inputName!);
    if (!t) throw new IrError(`evaluate ${graph.name}: no value fed for input ${input.inputName}`);
    if (!sameShape(t.shape, input.shape)) {
      throw new IrError(`evaluate ${graph.name}: input ${input.inputName} has shape ${formatShapeList(t.shape)}, the graph expects ${formatShapeList(input.shape)}`);
    }
    env.set(input, t);
  }
  for (const node of graph.nodes) {
    const args = node.inputs.map((v) => {
      const t = env.get(v);
      if (!t) throw new IrError(`evaluate ${graph.name}: ${node.op} reads a value not computed before it`);
      return t;
    });
    const results = lookupOp(node.op).evaluate(args, node.attrs);
    node.outputs.forEach((v, i) => env.set(v, results[i]!));
  }
  return env;
}

/** Evaluates the graph's named outputs. */
export function evaluateGraph(graph: Graph, feeds: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const env = evaluateValues(graph, feeds);
  return new Map(graph.outputs.map((o) => [o.name, env.get(o.value)!]));
}
