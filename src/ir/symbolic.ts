/**
 * Symbolic dimensions for graphs emitted with dynamic sizes (batch, sequence,
 * cache length), found without making the IR symbolic: the same graph is
 * lowered three times, with each size symbol at a different value, and every
 * dimension and integer-list attribute that differs between the lowerings is
 * solved as `coefficient · ∏ symbols + offset` (checked on the third). IR shapes
 * stay concrete; the ONNX emitter (targets/onnx/emit.ts) writes the solved
 * dimensions as `dim_param`s and computes reshape targets and slice bounds from
 * the inputs' shapes at run time. Training graphs never take this path: they
 * stay specialised to their sizes.
 *
 * What cannot be emitted this way is refused here, naming the node: a constant
 * or an op whose ONNX lowering bakes a size in (rope's tables, a causal mask
 * constant) on a dimension that varies.
 */
import { describeNode, IrError, type Graph, type Node, type Value } from './graph.js';
import { isTensor } from './ops/common.js';

/** A size symbol and its value in each of the three lowerings. */
export interface SymbolSpec {
  /** The dim_param name (`batch`, `sequence`, `past_sequence`). */
  readonly name: string;
  readonly values: readonly [number, number, number];
}

/** coefficient · ∏ symbols + offset. */
export interface DimExpr {
  readonly coefficient: number;
  readonly symbols: readonly string[];
  readonly offset: number;
}

/** A dimension: a number, or an expression of the size symbols. */
export type Dim = number | DimExpr;

/** Where a symbol's value is read at run time: an input's axis. */
export interface SymbolSource {
  readonly name: string;
  readonly input: string;
  readonly axis: number;
}

/**
 * The symbolic dimensions of a graph (its first lowering), keyed by value id and,
 * for attributes, by the id of the node's first output, so they survive passes that
 * keep ids (the rewriter re-emits nodes under their outputs' ids).
 */
export interface SymbolicDims {
  readonly symbols: readonly SymbolSource[];
  /** Values with at least one symbolic dimension. */
  readonly shapes: ReadonlyMap<number, readonly Dim[]>;
  /** Integer-list attributes with at least one symbolic entry, by node (first output id). */
  readonly attrs: ReadonlyMap<number, Readonly<Record<string, readonly Dim[]>>>;
}

/** Ops whose ONNX lowering reads only ranks and axes, never a size: any dimension may vary. */
const SIZE_FREE_OPS = new Set([
  'neg', 'exp', 'log', 'sqrt', 'reciprocal', 'tanh', 'sigmoid', 'relu', 'gelu', 'silu', 'abs', 'softplus', 'log_sigmoid', 'cos', 'sin',
  'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'less', 'greater', 'equal', 'not', 'and', 'or', 'where', 'cast',
  'matmul', 'reduce_sum', 'reduce_mean', 'reduce_max', 'softmax', 'log_softmax', 'layer_norm', 'rms_norm', 'gather', 'transpose', 'concat',
]);
/** Ops whose lowering takes its sizes from the emitter (`LoweringContext.shapeOf` / `intsOf`). */
const SIZED_BY_EMITTER = new Set(['reshape', 'expand', 'slice']);

/** `2*batch*sequence + 1`: a dim_param string. */
export function formatDim(d: Dim): string {
  if (typeof d === 'number') return String(d);
  const product = [...(d.coefficient !== 1 || d.symbols.length === 0 ? [String(d.coefficient)] : []), ...d.symbols].join('*');
  return d.offset === 0 ? product : `${product} ${d.offset > 0 ? '+' : '-'} ${Math.abs(d.offset)}`;
}

/** A dimension's value for given symbol values. */
export function dimValue(d: Dim, values: ReadonlyMap<string, number>): number {
  if (typeof d === 'number') return d;
  return d.coefficient * d.symbols.reduce((p, s) => p * values.get(s)!, 1) + d.offset;
}

/**
 * Solves the dimensions of `lowerings` (one graph lowered at three size
 * assignments, `symbols` giving each symbol's three values). Throws an IrError
 * naming the node when the graphs differ in structure, a size is baked into a
 * constant or an op lowering, or a dimension fits no expression.
 */
export function symbolicDims(lowerings: readonly [Graph, Graph, Graph], symbols: readonly SymbolSpec[]): SymbolicDims {
  const [g0, g1, g2] = lowerings;
  const fail = (message: string): never => {
    throw new IrError(`graph ${g0.name} with dynamic sizes (${symbols.map((s) => s.name).join(', ')}): ${message}`);
  };
  if (g1.nodes.length !== g0.nodes.length || g2.nodes.length !== g0.nodes.length || g1.inputs.length !== g0.inputs.length || g2.inputs.length !== g0.inputs.length) {
    fail(`its structure depends on the sizes (${g0.nodes.length}, ${g1.nodes.length} and ${g2.nodes.length} nodes)`);
  }
  const solve = (values: readonly [number, number, number], what: () => string): Dim => {
    if (values[0] === values[1] && values[1] === values[2]) return values[0];
    const d = solveDim(values, symbols);
    if (!d) fail(`${what()} is ${values.join(', ')} at the three sizes: not c·(product of ${symbols.map((s) => s.name).join(', ')}) + k`);
    return d!;
  };
  const dimsOf = (vs: readonly [Value, Value, Value], what: () => string): Dim[] | null => {
    const [a, b, c] = vs;
    if (a.shape.length !== b.shape.length || a.shape.length !== c.shape.length) fail(`the rank of ${what()} depends on the sizes`);
    const dims = a.shape.map((_, i) => solve([a.shape[i]!, b.shape[i]!, c.shape[i]!], () => `axis ${i} of ${what()}`));
    return dims.some((d) => typeof d !== 'number') ? dims : null;
  };
  const shapes = new Map<number, readonly Dim[]>();
  const attrs = new Map<number, Record<string, readonly Dim[]>>();
  g0.inputs.forEach((v, i) => {
    const dims = dimsOf([v, g1.inputs[i]!, g2.inputs[i]!], () => `input ${v.inputName}`);
    if (dims) shapes.set(v.id, dims);
  });
  g0.nodes.forEach((n, k) => {
    const m1 = g1.nodes[k]!;
    const m2 = g2.nodes[k]!;
    if (m1.op !== n.op || m2.op !== n.op) fail(`its structure depends on the sizes (node ${k} is ${n.op}, ${m1.op}, ${m2.op})`);
    let varies = false;
    n.outputs.forEach((o, i) => {
      const dims = dimsOf([o, m1.outputs[i]!, m2.outputs[i]!], () => `the output of ${describeNode(n)}`);
      if (dims) {
        shapes.set(o.id, dims);
        varies = true;
      }
    });
    if (n.inputs.some((v) => shapes.has(v.id))) varies = true;
    for (const [key, a0] of Object.entries(n.attrs)) {
      const a1 = m1.attrs[key];
      const a2 = m2.attrs[key];
      if (isTensor(a0)) {
        if (!isTensor(a1) || !isTensor(a2) || a0.shape.join() !== a1.shape.join() || a0.shape.join() !== a2.shape.join() || !a0.data.every((x, i) => Object.is(x, a1.data[i]) && Object.is(x, a2.data[i]))) {
          fail(`${describeNode(n)} holds a constant that depends on the sizes (shape [${a0.shape.join(', ')}])`);
        }
        continue;
      }
      if (JSON.stringify(a0) === JSON.stringify(a1) && JSON.stringify(a0) === JSON.stringify(a2)) continue;
      if (!Array.isArray(a0) || !Array.isArray(a1) || !Array.isArray(a2) || a0.length !== a1.length || a0.length !== a2.length) fail(`attribute ${key} of ${describeNode(n)} depends on the sizes`);
      const list = a0 as readonly number[];
      attrs.set(n.outputs[0]!.id, { ...(attrs.get(n.outputs[0]!.id) ?? {}), [key]: list.map((x, i) => solve([x, (a1 as readonly number[])[i]!, (a2 as readonly number[])[i]!], () => `attribute ${key}[${i}] of ${describeNode(n)}`)) });
      varies = true;
    }
    if (varies && !SIZE_FREE_OPS.has(n.op) && !SIZED_BY_EMITTER.has(n.op)) fail(`${describeNode(n)} is lowered to ONNX with its sizes built in, and they vary`);
  });
  const sources = symbols.map((s): SymbolSource => {
    for (const v of g0.inputs) {
      const dims = shapes.get(v.id);
      const axis = dims?.findIndex((d) => typeof d !== 'number' && d.coefficient === 1 && d.offset === 0 && d.symbols.length === 1 && d.symbols[0] === s.name) ?? -1;
      if (axis >= 0) return { name: s.name, input: v.inputName!, axis };
    }
    return fail(`no input has an axis of size ${s.name} to read it from`);
  });
  return { symbols: sources, shapes, attrs };
}

/** The simplest c·∏S + k that gives the three values (products over subsets of the symbols, fewest symbols first). */
function solveDim(values: readonly [number, number, number], symbols: readonly SymbolSpec[]): DimExpr | null {
  const subsets: string[][] = [];
  for (let mask = 1; mask < 1 << symbols.length; mask++) subsets.push(symbols.filter((_, i) => mask & (1 << i)).map((s) => s.name));
  subsets.sort((a, b) => a.length - b.length);
  const at = (subset: readonly string[], k: number): number => subset.reduce((p, name) => p * symbols.find((s) => s.name === name)!.values[k]!, 1);
  for (const subset of subsets) {
    const m = [0, 1, 2].map((k) => at(subset, k));
    if (m[0] === m[1]) continue;
    const coefficient = (values[0] - values[1]) / (m[0]! - m[1]!);
    if (!Number.isInteger(coefficient) || coefficient < 1) continue;
    const offset = values[0] - coefficient * m[0]!;
    if (coefficient * m[2]! + offset === values[2]) return { coefficient, symbols: subset, offset };
  }
  return null;
}

/** Whether a node has attributes or outputs with symbolic dimensions (for emitters). */
export function nodeAttrs(dims: SymbolicDims, node: Node): Readonly<Record<string, readonly Dim[]>> | undefined {
  return node.outputs.length ? dims.attrs.get(node.outputs[0]!.id) : undefined;
}
