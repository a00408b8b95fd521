/**
 * Indexing ops: embedding lookup (`gather`) and its transpose
 * (`scatter_add_rows`), picking one entry per row along the last axis
 * (`take_along`), and `one_hot`. Indices are i64 and never get gradients.
 * gather, scatter_add_rows and take_along need every index in range
 * ([0, rows) or [0, V)): the reference throws otherwise (onnxruntime fails or,
 * for negative indices, counts from the end).
 */
import { IrError, type Attrs, type Value, type ValueType } from '../graph.js';
import type { LoweringContext, OpDef } from '../op.js';
import { expectArity } from './common.js';
import { formatShapeList as fmt, makeTensor, sameShape, sizeOf, type Tensor } from '../tensor.js';


function requireIds(op: string, what: string, v: ValueType): void {
  if (v.dtype !== 'i64') throw new IrError(`${op}: ${what} must be i64, not ${v.dtype}${fmt(v.shape)}`);
}

/** A positive integer attribute. */
function countAttr(op: string, attrs: Attrs, key: string): number {
  const v = attrs[key];
  if (v === undefined) throw new IrError(`${op}: missing attribute ${key}`);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new IrError(`${op}: attribute ${key} must be a positive integer, not ${String(v)}`);
  return v;
}

/** The index at flat position `k` of `ids`, checked against [0, n). */
function indexAt(op: string, ids: Tensor, k: number, n: number, what: string): number {
  const id = ids.data[k]!;
  if (!(id >= 0 && id < n)) throw new IrError(`${op}: index ${id} at position ${k} is outside [0, ${n}) (${what})`);
  return id;
}

/** The i64 indices with a trailing axis of 1, as ScatterND and GatherElements want them. */
function unsqueezeLast(ctx: LoweringContext, name: string, shape: readonly number[]): string {
  return ctx.emit('Reshape', [name, ctx.constInt64([...shape, 1])], 1)[0]!;
}

const gather: OpDef = {
  name: 'gather',
  doc: 'gather(table [R, ...], ids i64 [...]) → [...ids, ...]: rows of the table (embedding lookup; ONNX Gather on axis 0).',
  infer(inputs) {
    expectArity('gather', inputs, 2);
    const [table, ids] = inputs as [ValueType, ValueType];
    requireIds('gather', 'ids', ids);
    if (table.shape.length === 0) throw new IrError('gather: table must have a row axis, not be a scalar');
    return [{ dtype: table.dtype, shape: [...ids.shape, ...table.shape.slice(1)] }];
  },
  evaluate([table, ids]) {
    const rows = table!.shape[0]!;
    const row = sizeOf(table!.shape.slice(1));
    const out = makeTensor(table!.dtype, [...ids!.shape, ...table!.shape.slice(1)]);
    for (let k = 0; k < ids!.data.length; k++) {
      const r = indexAt('gather', ids!, k, rows, `the table has ${rows} rows`);
      out.data.set(table!.data.subarray(r * row, (r + 1) * row), k * row);
    }
    return [out];
  },
  lower(ctx, node) {
    ctx.emit('Gather', [ctx.input(node, 0), ctx.input(node, 1)], [ctx.output(node, 0)], { axis: { i: 0 } });
  },
  grad(b, node, [g]) {
    const [table, ids] = node.inputs as [Value, Value];
    return [b.scatterAddRows(ids, g!, table.shape[0]!), null];
  },
};

const scatterAddRows: OpDef = {
  name: 'scatter_add_rows',
  doc: 'scatter_add_rows(ids i64 [...], updates [...ids, ...]) {rows} → [rows, ...]: zeros with each update added at its row; repeated ids accumulate (ONNX ScatterND, reduction add).',
  infer(inputs, attrs) {
    expectArity('scatter_add_rows', inputs, 2);
    const [ids, updates] = inputs as [ValueType, ValueType];
    requireIds('scatter_add_rows', 'ids', ids);
    if (updates.dtype !== 'f32') throw new IrError(`scatter_add_rows: updates must be f32, not ${updates.dtype}${fmt(updates.shape)}`);
    if (!sameShape(updates.shape.slice(0, ids.shape.length), ids.shape)) {
      throw new IrError(`scatter_add_rows: updates ${fmt(updates.shape)} must start with the shape of ids ${fmt(ids.shape)}`);
    }
    const rows = countAttr('scatter_add_rows', attrs, 'rows');
    return [{ dtype: 'f32', shape: [rows, ...updates.shape.slice(ids.shape.length)] }];
  },
  evaluate([ids, updates], attrs) {
    const rows = countAttr('scatter_add_rows', attrs, 'rows');
    const rest = updates!.shape.slice(ids!.shape.length);
    const row = sizeOf(rest);
    const out = makeTensor('f32', [rows, ...rest]);
    for (let k = 0; k < ids!.data.length; k++) {
      const r = indexAt('scatter_add_rows', ids!, k, rows, `rows is ${rows}`);
      for (let j = 0; j < row; j++) out.data[r * row + j]! += updates!.data[k * row + j]!;
    }
    return [out];
  },
  lower(ctx, node) {
    const ids = node.inputs[0]!;
    const outShape = node.outputs[0]!.shape;
    // ConstantOfShape's default value is a float 0: zeros without an initializer the size of the table.
    const [zeros] = ctx.emit('ConstantOfShape', [ctx.constInt64(outShape)], 1);
    const indices = unsqueezeLast(ctx, ctx.input(node, 0), ids.shape);
    ctx.emit('ScatterND', [zeros!, indices, ctx.input(node, 1)], [ctx.output(node, 0)], { reduction: { s: 'add' } });
  },
  grad(b, node, [g]) {
    return [null, b.gather(g!, node.inputs[0]!)];
  },
};

const takeAlong: OpDef = {
  name: 'take_along',
  doc: 'take_along(x [..., V], idx i64 [...]) → [...]: x at idx along the last axis (ONNX GatherElements on axis −1).',
  infer(inputs) {
    expectArity('take_along', inputs, 2);
    const [x, idx] = inputs as [ValueType, ValueType];
    requireIds('take_along', 'idx', idx);
    if (x.shape.length === 0) throw new IrError('take_along: x must have at least one axis, not be a scalar');
    if (!sameShape(idx.shape, x.shape.slice(0, -1))) throw new IrError(`take_along: idx ${fmt(idx.shape)} must match the leading axes of x ${fmt(x.shape)}`);
    return [{ dtype: x.dtype, shape: idx.shape }];
  },
  evaluate([x, idx]) {
    const v = x!.shape[x!.shape.length - 1]!;
    const out = makeTensor(x!.dtype, idx!.shape);
    for (let k = 0; k < idx!.data.length; k++) out.data[k] = x!.data[k * v + indexAt('take_along', idx!, k, v, `the last axis has ${v} entries`)]!;
    return [out];
  },
  lower(ctx, node) {
    const idx = node.inputs[1]!;
    const [picked] = ctx.emit('GatherElements', [ctx.input(node, 0), unsqueezeLast(ctx, ctx.input(node, 1), idx.shape)], 1, { axis: { i: -1 } });
    ctx.emit('Reshape', [picked!, ctx.constInt64(idx.shape)], [ctx.output(node, 0)]);
  },
  grad(b, node, [g]) {
    const [x, idx] = node.inputs as [Value, Value];
    const v = x.shape[x.shape.length - 1]!;
    return [b.mul(b.oneHot(idx, v), b.reshape(g!, [...idx.shape, 1])), null];
  },
};

const oneHot: OpDef = {
  name: 'one_hot',
  doc: 'one_hot(idx i64 [...]) {depth} → f32 [..., depth]: 1 at idx (negative idx counts from the end; outside [−depth, depth) gives a zero row, as ONNX OneHot).',
  infer(inputs, attrs) {
    expectArity('one_hot', inputs, 1);
    const idx = inputs[0]!;
    requireIds('one_hot', 'idx', idx);
    return [{ dtype: 'f32', shape: [...idx.shape, countAttr('one_hot', attrs, 'depth')] }];
  },
  evaluate([idx], attrs) {
    const depth = countAttr('one_hot', attrs, 'depth');
    const out = makeTensor('f32', [...idx!.shape, depth]);
    idx!.data.forEach((i, k) => {
      if (i >= -depth && i < depth) out.data[k * depth + (i < 0 ? i + depth : i)] = 1;
    });
    return [out];
  },
  lower(ctx, node) {
    const depth = countAttr('one_hot', node.attrs, 'depth');
    const scalar = node.inputs[0]!.shape.length === 0;
    // ONNX OneHot wants indices of rank ≥ 1: a scalar goes through [1] and back.
    const idx = scalar ? ctx.emit('Reshape', [ctx.input(node, 0), ctx.constInt64([1])], 1)[0]! : ctx.input(node, 0);
    const [y] = ctx.emit('OneHot', [idx, ctx.constInt64([depth], []), ctx.constFloat([0, 1])], scalar ? 1 : [ctx.output(node, 0)], { axis: { i: -1 } });
    if (scalar) ctx.emit('Reshape', [y!, ctx.constInt64([depth])], [ctx.output(node, 0)]);
  },
};

export const INDEXING_OPS: readonly OpDef[] = [gather, scatterAddRows, takeAlong, oneHot];
