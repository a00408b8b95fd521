/**
 * Analytic figures read off an IR graph: matmul FLOPs (grouped by operand
 * shapes) and the memory a training step needs at least.
 *
 * FLOPs count only `matmul` nodes: 2·M·N·K per product, times the broadcast
 * batch dimensions. Elementwise work, reductions, softmax, layer norm, gather,
 * cross-entropy and the optimizer update are not counted, so achieved FLOP/s
 * figures are for the matmul work alone (a lower bound on the work done).
 */
import type { Graph, Node, Value } from '../src/ir/graph.js';
import type { TrainPlan } from '../src/ir/lower/trainStage.js';
import type { DType } from '../src/ir/tensor.js';

export interface MatmulClass {
  /** Operand shapes, as written in the graph. */
  readonly a: readonly number[];
  readonly b: readonly number[];
  readonly count: number;
  readonly flopsEach: number;
  /** Top-level scopes of the nodes (`loss`: forward, `grad`: backward). */
  readonly scopes: readonly string[];
}

export interface MatmulStats {
  readonly flops: number;
  readonly nodes: number;
  /** One entry per distinct pair of operand shapes, most FLOPs first. */
  readonly classes: readonly MatmulClass[];
  /** FLOPs of forward nodes (see `isForward`); the rest is the backward pass. */
  readonly forwardFlops: number;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function matmulFlops(a: readonly number[], out: readonly number[]): number {
  return 2 * numel(out) * a[a.length - 1]!;
}

/** Forward nodes: those whose scope starts with neither `grad` nor `optimizer`. */
function isForward(n: Node): boolean {
  return !n.scope.startsWith('grad') && !n.scope.startsWith('optimizer');
}

function topScope(n: Node): string {
  return n.scope.split('.')[0] || '(top)';
}

export function matmulStats(g: Graph): MatmulStats {
  const classes = new Map<string, { a: number[]; b: number[]; count: number; flopsEach: number; scopes: Set<string> }>();
  let forwardFlops = 0;
  let flops = 0;
  let nodes = 0;
  for (const n of g.nodes) {
    if (n.op !== 'matmul') continue;
    const [a, b] = n.inputs as [Value, Value];
    const f = matmulFlops(a.shape, n.outputs[0]!.shape);
    flops += f;
    nodes++;
    if (isForward(n)) forwardFlops += f;
    const key = `${a.shape.join(',')}@${b.shape.join(',')}`;
    let c = classes.get(key);
    if (!c) classes.set(key, (c = { a: [...a.shape], b: [...b.shape], count: 0, flopsEach: f, scopes: new Set() }));
    c.count++;
    c.scopes.add(topScope(n));
  }
  const list = [...classes.values()]
    .map((c) => ({ a: c.a, b: c.b, count: c.count, flopsEach: c.flopsEach, scopes: [...c.scopes] }))
    .sort((x, y) => y.count * y.flopsEach - x.count * x.flopsEach);
  return { flops, nodes, classes: list, forwardFlops };
}

export function shapeText(a: readonly number[], b: readonly number[]): string {
  return `[${a.join(',')}]@[${b.join(',')}]`;
}

const BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, i64: 8, i32: 4, i8: 1, u8: 1, bool: 1 };

function bytesOf(v: Value): number {
  return numel(v.shape) * BYTES[v.dtype];
}


export interface MemoryEstimate {
  readonly params: number;
  readonly grads: number;
  readonly optimizerState: number;
  /** Forward values (outputs of forward nodes) that a backward node reads, each once. */
  readonly activationsRead: number;
  /** Every output of every forward node (an upper estimate: also counts values nothing keeps). */
  readonly activationsAll: number;
}

/**
 * Bytes a training step needs at least, from the plan and the (optimised)
 * train_step graph. Forward nodes are those whose scope starts with neither
 * `grad` nor `optimizer`. Sizes use each value's dtype (f32 4 bytes, i64 8).
 */
export function memoryEstimate(plan: TrainPlan, g: Graph): MemoryEstimate {
  const params = plan.params.reduce((n, p) => n + numel(p.shape) * BYTES[p.dtype], 0);
  const grads = plan.params.filter((p) => p.trainable).reduce((n, p) => n + numel(p.shape) * 4, 0);
  const optimizerState = plan.state.reduce((n, s) => n + numel(s.shape) * 4, 0);
  let activationsAll = 0;
  for (const n of g.nodes) if (isForward(n)) for (const v of n.outputs) activationsAll += bytesOf(v);
  const read = new Set<Value>();
  for (const n of g.nodes) {
    if (!n.scope.startsWith('grad')) continue;
    for (const v of n.inputs) if (v.producer && isForward(v.producer)) read.add(v);
  }
  let activationsRead = 0;
  for (const v of read) activationsRead += bytesOf(v);
  return { params, grads, optimizerState, activationsRead, activationsAll };
}
