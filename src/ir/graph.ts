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

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly Value[];
  readonly attrs: Attrs;
  readonly outputs: readonly Value[];
  /** Where in the recipe this came from (`blocks.2.attn`), for names and the textual form. */
  readonly scope: string;
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
