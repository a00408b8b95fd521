/**
 * Reverse-mode automatic differentiation over the IR. Walks the nodes between
 * the parameters and the loss backwards, asking each op's gradient rule for
 * the gradients of its inputs; a value read by several nodes gets the sum of
 * their contributions. Only values that depend on a requested parameter get
 * gradients, so frozen models and data cost nothing. The nodes it adds are
 * marked `backward`, with the recipe span of the forward node each comes from.
 */
import type { GraphBuilder } from './builder.js';
import { describeNode, IrError, type Node, type Provenance, type Value } from './graph.js';
import { lookupOp } from './ops/index.js';
import { formatShapeList, sameShape } from './tensor.js';

/**
 * Appends to `b` the nodes computing d loss / d p for every p in `wrt`
 * (a scalar f32 loss). A parameter the loss does not depend on gets no entry.
 */
export function gradients(b: GraphBuilder, loss: Value, wrt: readonly Value[]): Map<Value, Value> {
  if (loss.shape.length !== 0 || loss.dtype !== 'f32') throw new IrError(`the loss must be a scalar f32, not ${loss.dtype}${formatShapeList(loss.shape)}`);
  const forward = b.build().nodes;

  // Values that depend on a parameter, in forward order.
  const dependsOnParam = new Set<Value>(wrt);
  for (const node of forward) {
    if (node.inputs.some((v) => dependsOnParam.has(v))) for (const o of node.outputs) if (o.dtype === 'f32') dependsOnParam.add(o);
  }
  // Nodes on a path from a parameter to the loss.
  const needed = new Set<Value>([loss]);
  const onPath: Node[] = [];
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    if (!node.outputs.some((o) => needed.has(o))) continue;
    if (!node.inputs.some((v) => dependsOnParam.has(v))) continue;
    onPath.push(node);
    for (const v of node.inputs) if (dependsOnParam.has(v)) needed.add(v);
  }

  const grads = new Map<Value, Value>();
  const accumulate = (v: Value, g: Value): void => {
    if (!sameShape(v.shape, g.shape)) throw new IrError(`gradient of a ${formatShapeList(v.shape)} value has shape ${formatShapeList(g.shape)}`);
    const prev = grads.get(v);
    grads.set(v, prev ? b.add(prev, g) : g);
  };
  // Backward nodes keep the span of the forward node they differentiate (the sum of
  // a value's gradient contributions, that of the node contributing), marked backward.
  const backwardOf = (node: Node | null): Provenance => ({ span: node?.provenance.span ?? null, phase: 'backward' });
  b.scoped('grad', () => {
    b.withProvenance(backwardOf(loss.producer), () => grads.set(loss, b.scalar(1)));
    for (const node of onPath) {
      const outGrads = node.outputs.map((o) => grads.get(o) ?? null);
      if (outGrads.every((g) => g === null)) continue;
      const def = lookupOp(node.op);
      if (!def.grad) throw new IrError(`no gradient rule for ${describeNode(node)}`);
      b.withProvenance(backwardOf(node), () => {
        const inGrads = b.scoped(node.scope || node.op, () => def.grad!(b, node, outGrads));
        node.inputs.forEach((v, i) => {
          const g = inGrads[i];
          if (g && dependsOnParam.has(v)) accumulate(v, g);
        });
      });
    }
  });
  const result = new Map<Value, Value>();
  for (const p of wrt) {
    const g = grads.get(p);
    if (g) result.set(p, g);
  }
  return result;
}
