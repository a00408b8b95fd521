/**
 * The rewriter: the one way a pass changes a graph. It walks the nodes in
 * order and asks a visitor what becomes of each; everything it puts in the new
 * graph goes through a `GraphBuilder`, so type rules run on every changed node
 * and `Value.producer` always names the node in the new graph.
 */
import { GraphBuilder } from '../builder.js';
import { describeNode, IrError, type Graph, type Node, type Value } from '../graph.js';
import { formatShapeList, sameShape } from '../tensor.js';

/** What a visitor is given for the node it is looking at. */
export interface RewriteContext {
  /**
   * Emits new nodes at the current position of the new graph. Inside a visit
   * they get the visited node's scope and provenance, so a replacement
   * (a folded constant, a quantize/dequantize pair) still names its recipe line.
   */
  readonly b: GraphBuilder;
  /** What a value of the old graph is in the new one: itself, its re-emitted copy, or its replacement. */
  value(old: Value): Value;
  /**
   * Puts `node` into the new graph and returns its outputs there: the node itself
   * when none of its inputs changed, otherwise a copy re-emitted on the new inputs
   * (type rule run again; the outputs keep their ids).
   */
  keep(node: Node): readonly Value[];
}

/**
 * What becomes of a node: `undefined` keeps it (as `keep` does); an array of
 * values (one per output, each of the output's dtype and shape) replaces its
 * outputs, which later nodes then read instead; `'drop'` removes it, and it is
 * an error for anything after it to read its outputs.
 */
export type RewriteResult = readonly Value[] | 'drop' | undefined;

export type RewriteVisitor = (node: Node, rw: RewriteContext) => RewriteResult;

/**
 * Rebuilds `graph` node by node through a builder, as `visit` says. Graph
 * inputs stay the same values; graph outputs follow their replacements.
 * `pass` names the rewrite in errors.
 *
 * A pass that replaces every `x * 1` by `x`:
 *
 *     rewriteGraph(g, 'mul-one', (n, rw) => {
 *       const one = n.inputs[1]!.producer;
 *       if (n.op !== 'mul' || one?.op !== 'constant' || !isOne(one)) return undefined;
 *       return [rw.value(n.inputs[0]!)];
 *     });
 *
 * and one that puts a new node in front of a value (quantize → dequantize):
 *
 *     rewriteGraph(g, 'qdq', (n, rw) => {
 *       if (n.op !== 'matmul') return undefined;
 *       const [x, w] = n.inputs.map(rw.value);
 *       return [rw.b.matmul(x!, fakeQuantize(rw.b, w!))];
 *     });
 */
export function rewriteGraph(graph: Graph, pass: string, visit: RewriteVisitor): Graph {
  const b = GraphBuilder.continuing(graph);
  const mapped = new Map<Value, Value>();
  const dropped = new Map<Value, Node>();
  for (const v of graph.inputs) mapped.set(v, v);

  let current: Node | null = null;
  const fail = (message: string): never => {
    throw new IrError(`rewrite ${pass} of graph ${graph.name}${current ? `, at ${describeNode(current)}` : ''}: ${message}`);
  };
  const value = (old: Value): Value => {
    const v = mapped.get(old);
    if (v) return v;
    const gone = dropped.get(old);
    return fail(gone ? `value %${old.id} is read but its producer ${describeNode(gone)} was dropped` : `value %${old.id} is not in the graph before this point`);
  };
  let kept = false;
  const keep = (node: Node): readonly Value[] => {
    if (node !== current) fail(`keep() is for the node being visited (${current?.op}), not ${node.op}`);
    if (kept) fail('the node was kept twice');
    kept = true;
    const inputs = node.inputs.map(value);
    const outs = inputs.every((v, i) => v === node.inputs[i]) ? b.adopt(node) : b.reemit(node, inputs);
    node.outputs.forEach((o, i) => mapped.set(o, outs[i]!));
    return outs;
  };
  const ctx: RewriteContext = { b, value, keep };

  for (const node of graph.nodes) {
    current = node;
    kept = false;
    const origin = b.enterOriginOf(node);
    let result: RewriteResult;
    try {
      result = visit(node, ctx);
    } finally {
      b.leaveOrigin(origin);
    }
    if (result === undefined) {
      if (!kept) keep(node);
    } else if (result === 'drop') {
      if (kept) fail('the node was kept and then dropped');
      for (const o of node.outputs) dropped.set(o, node);
    } else {
      if (result.length !== node.outputs.length) fail(`${result.length} replacement values for ${node.outputs.length} outputs`);
      node.outputs.forEach((o, i) => {
        const r = result[i]!;
        if (r.dtype !== o.dtype || !sameShape(r.shape, o.shape)) {
          fail(`output ${i} (${o.dtype}${formatShapeList(o.shape)}) is replaced by a value of another type, ${r.dtype}${formatShapeList(r.shape)}`);
        }
        mapped.set(o, r);
      });
    }
  }
  current = null;
  for (const o of graph.outputs) b.output(o.name, value(o.value));
  return b.build();
}
