/**
 * What one op of the op table defines, side by side: its type rule, its
 * reference semantics (float64 evaluator), its ONNX lowering and its gradient.
 */
import type { OpBuilder } from './opBuilder.js';
import type { Attrs, Node, Value, ValueType } from './graph.js';
import type { Tensor } from './tensor.js';

/** An ONNX attribute, typed explicitly so 1.0 stays a float and 1 an int. */
export type OnnxAttr =
  | { readonly i: number }
  | { readonly f: number }
  | { readonly s: string }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly t: Tensor };

/** What an op's ONNX lowering can do: emit nodes and constants, name temporaries. */
export interface LoweringContext {
  /** ONNX names of the node's inputs and outputs. */
  input(node: Node, index: number): string;
  output(node: Node, index: number): string;
  /**
   * Emits one ONNX node. `outputs` are names (use `output(node, i)` for the op's own
   * results) or a count of fresh temporaries. Returns the output names.
   */
  emit(opType: string, inputs: readonly string[], outputs: readonly string[] | number, attrs?: Readonly<Record<string, OnnxAttr>>): string[];
  /** Constants as ONNX tensors (deduplicated); `dims` defaults to a 1-D tensor of the values. */
  constInt64(values: readonly number[], dims?: readonly number[]): string;
  constFloat(values: readonly number[], dims?: readonly number[]): string;
  constBool(values: readonly boolean[], dims?: readonly number[]): string;
  /** An int8 constant (the zero point that makes QuantizeLinear produce int8). */
  constInt8(values: readonly number[], dims?: readonly number[]): string;
  /**
   * `v`'s shape as an int64 tensor, for ops that hand ONNX a shape (Reshape, Expand):
   * a constant, or, in a graph emitted with dynamic sizes (ir/symbolic.ts), computed
   * from the inputs' shapes at run time.
   */
  shapeOf(v: Value): string;
  /** An integer-list attribute of `node` whose static value is `values` (slice bounds) as an int64 tensor, computed at run time when it depends on dynamic sizes. */
  intsOf(node: Node, attr: string, values: readonly number[]): string;
}

export interface OpDef {
  readonly name: string;
  /** One line for `stdlib/README.md`-style docs and `ptr ir`. */
  readonly doc: string;
  /** Output types from input types and attributes; throws IrError naming the op and both shapes on misuse. */
  infer(inputs: readonly ValueType[], attrs: Attrs): ValueType[];
  /** Reference semantics, computed in float64. */
  evaluate(inputs: readonly Tensor[], attrs: Attrs): Tensor[];
  /** Emits ONNX nodes computing the node's outputs, named `ctx.output(node, i)`. */
  lower(ctx: LoweringContext, node: Node): void;
  /**
   * Gradients with respect to each input, built from other ops, given the
   * gradient of each output (null: that output does not reach the loss).
   * Returns null for an input that is not differentiable (indices, masks).
   * Absent: no input is differentiable.
   */
  grad?(b: OpBuilder, node: Node, outputGrads: readonly (Value | null)[]): (Value | null)[];
}
