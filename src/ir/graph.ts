/**
 * The IR: a typed SSA dataflow graph. Every value has one producer (a node or
 * a graph input), a dtype and a concrete shape — stages are shape-specialised
 * (batch size and sequence length are known when a stage is lowered).
 * Nodes name an op from the op table (`ops/`); nothing else in the compiler
 * switches on op names.
 */
import type { DType, Tensor } from './tensor.js';

export interface ValueType {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface Value extends ValueType {
  readonly id: number;
  /** The node computing this value; null for graph inputs. */
  readonly producer: Node | null;
  /** Set for graph inputs; outputs are named separately. */
  readonly inputName: string | null;
}

/** Attribute values an op may take. A Tensor only for `constant`. */
export type AttrValue = number | boolean | string | readonly number[] | Tensor;
export type Attrs = Readonly<Record<string, AttrValue>>;

/** Which part of a training step a node computes. */
export type Phase = 'forward' | 'backward' | 'optimizer';

/** A point in a recipe file: 1-based line and column (an AST `Span` is one). */
export interface SourcePoint {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/**
 * Where a node came from: the recipe expression whose evaluation emitted it
 * (null for nodes no expression made, such as hand-built test graphs) and its
 * phase. A backward node carries the span of the forward node it differentiates.
 */
export interface Provenance {
  readonly span: SourcePoint | null;
  readonly phase: Phase;
}

/** The provenance of nodes built outside any recipe expression. */
export const NO_PROVENANCE: Provenance = { span: null, phase: 'forward' };

/** `recipe.pt-recipe:12:5 forward`, or just the phase when there is no span. */
export function formatProvenance(p: Provenance): string {
  return p.span ? `${p.span.file}:${p.span.line}:${p.span.column} ${p.phase}` : p.phase;
}

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly Value[];
  readonly attrs: Attrs;
  readonly outputs: readonly Value[];
  /** Where in the model this came from (`blocks.2.attn`), for names and the textual form. */
  readonly scope: string;
  /** Where in the recipe this came from, and its phase (written to the ONNX node's doc_string). */
  readonly provenance: Provenance;
}

/** `matmul (in blocks.0.attn, at nn.pt-recipe:40:7 backward)`: a node named in an error message. */
export function describeNode(node: Node): string {
  const where = [node.scope ? `in ${node.scope}` : '', node.provenance.span ? `at ${formatProvenance(node.provenance)}` : ''].filter((w) => w);
  return where.length ? `${node.op} (${where.join(', ')})` : node.op;
}

export interface GraphOutput {
  readonly name: string;
  readonly value: Value;
}

export interface Graph {
  readonly name: string;
  readonly inputs: readonly Value[];
  /** In topological order. */
  readonly nodes: readonly Node[];
  readonly outputs: readonly GraphOutput[];
}

export class IrError extends Error {}
