/**
 * Neuron groups of a forward graph: the hidden units of feed-forward layers,
 * which structured pruning removes whole. A group is a width h shared by
 *
 *   x @ w_in [in, h]   (one or several: SwiGLU's gate and up, joined by a product)
 *   (+ b [h])          biases on the way
 *   f(·)               elementwise functions (gelu, silu, …)
 *   · @ w_out [h, out] the matmul that consumes the units,
 *
 * with nothing else reading the values in between. Removing unit j removes
 * column j of every w_in and b and row j of w_out; the layer's output keeps its
 * shape, so nothing outside the group changes. Found in the IR, not by block
 * name: any block written this way (std.nn's MLP and SwiGLU, a user's own)
 * has groups; attention (whose projections feed a split and reshapes into
 * heads) has none.
 */
import type { Graph, Node, Value } from '../graph.js';

/** A parameter axis that runs over a group's units. */
export interface GroupMember {
  /** Graph input name (`policy.blocks.0.ff.up.w`). */
  readonly param: string;
  readonly axis: number;
}

export interface NeuronGroup {
  /** The layer: the closing weight's name less `.w` less its last part (`policy.blocks.0.ff`). */
  readonly name: string;
  /** h: the number of units. */
  readonly size: number;
  readonly members: readonly GroupMember[];
  /** The closing matmul's weight [h, out] (also a member, axis 0). */
  readonly closing: string;
  /** The units' activations as the closing matmul reads them (its input 0, [..., h]): what Wanda weighs rows by. */
  readonly activation: Value;
}

/** Ops applied element by element to one input: a unit stays a unit through them. */
const ELEMENTWISE_UNARY = new Set(['neg', 'exp', 'log', 'sqrt', 'reciprocal', 'tanh', 'sigmoid', 'relu', 'gelu', 'silu', 'abs', 'softplus', 'log_sigmoid', 'cos', 'sin']);

function isParam(v: Value): boolean {
  return v.producer === null && v.inputName !== null && v.dtype === 'f32';
}

/** Where a chain of per-unit values ends: at a product with another chain, at the closing matmul, or nowhere valid. */
type ChainEnd = { readonly k: 'join'; readonly node: Node; readonly members: GroupMember[] } | { readonly k: 'close'; readonly node: Node; readonly members: GroupMember[] } | null;

/**
 * Follows the value `v` (last axis: the units, size h) forward while it stays per-unit:
 * reshapes keeping the last axis, bias adds, elementwise functions, products with a
 * scalar constant. Ends at a product of two non-constant values (a join) or at a
 * matmul by a weight [h, out] (the close).
 */
function follow(graph: Graph, readers: ReadonlyMap<Value, Node[]>, v: Value, h: number): ChainEnd {
  const members: GroupMember[] = [];
  const outputs = new Set(graph.outputs.map((o) => o.value));
  let at = v;
  for (;;) {
    const next = readers.get(at) ?? [];
    if (next.length !== 1 || outputs.has(at)) return null;
    const n = next[0]!;
    const out = n.outputs[0]!;
    if (n.op === 'reshape') {
      if (out.shape[out.shape.length - 1] !== h) return null;
    } else if (ELEMENTWISE_UNARY.has(n.op)) {
      // per unit
    } else if (n.op === 'add' || n.op === 'mul') {
      const other = n.inputs[0] === at ? n.inputs[1]! : n.inputs[0]!;
      if (other === at) return null;
      const scalarConstant = other.producer?.op === 'constant' && other.shape.every((d) => d === 1);
      if (n.op === 'add' && isParam(other) && other.shape.length === 1 && other.shape[0] === h) members.push({ param: other.inputName!, axis: 0 });
      else if (n.op === 'mul' && !scalarConstant && !isParam(other) && other.producer?.op !== 'constant' && other.shape[other.shape.length - 1] === h && out.shape.length === at.shape.length) return { k: 'join', node: n, members };
      else if (!scalarConstant) return null;
    } else if (n.op === 'matmul' && n.inputs[0] === at && isParam(n.inputs[1]!) && n.inputs[1]!.shape.length === 2 && n.inputs[1]!.shape[0] === h) {
      members.push({ param: n.inputs[1]!.inputName!, axis: 0 });
      return { k: 'close', node: n, members };
    } else return null;
    at = out;
  }
}

/** The neuron groups of a forward graph, in graph order of their closing matmuls. */
export function neuronGroups(graph: Graph): NeuronGroup[] {
  const readers = new Map<Value, Node[]>();
  for (const n of graph.nodes) for (const v of n.inputs) (readers.get(v) ?? readers.set(v, []).get(v)!).push(n);
  // Chains from each opening matmul x @ w_in [in, h].
  const joins = new Map<Node, { members: GroupMember[]; count: number; h: number }>();
  const groups: NeuronGroup[] = [];
  const close = (end: Extract<ChainEnd, { k: 'close' }>, members: GroupMember[], h: number): void => {
    const closing = end.node.inputs[1]!.inputName!;
    groups.push({ name: closing.replace(/\.w$/, '').replace(/\.[^.]+$/, ''), size: h, members: [...members, ...end.members], closing, activation: end.node.inputs[0]! });
  };
  for (const n of graph.nodes) {
    if (n.op !== 'matmul' || !isParam(n.inputs[1]!) || n.inputs[1]!.shape.length !== 2) continue;
    const h = n.inputs[1]!.shape[1]!;
    const opening: GroupMember = { param: n.inputs[1]!.inputName!, axis: 1 };
    const end = follow(graph, readers, n.outputs[0]!, h);
    if (end?.k === 'close') close(end, [opening], h);
    else if (end?.k === 'join') {
      const j = joins.get(end.node) ?? { members: [], count: 0, h };
      j.members.push(opening, ...end.members);
      j.count++;
      joins.set(end.node, j);
    }
  }
  // A product of two chains is one group when both sides came from opening matmuls.
  for (const [node, j] of joins) {
    if (j.count !== 2) continue;
    const end = follow(graph, readers, node.outputs[0]!, j.h);
    if (end?.k === 'close') close(end, j.members, j.h);
  }
  return groups.sort((a, b) => graph.nodes.findIndex((n) => n.inputs[1]?.inputName === a.closing) - graph.nodes.findIndex((n) => n.inputs[1]?.inputName === b.closing));
}

/** Units kept when pruning a share `sparsity` of `size` (at least one). */
export function keptUnits(size: number, sparsity: number): number {
  return Math.max(1, Math.round(size * (1 - sparsity)));
}
