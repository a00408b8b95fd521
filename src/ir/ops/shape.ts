/**
 * Shape ops: reshape, transpose, slice, concat, expand and zero padding. All
 * shapes are concrete, so every attribute is resolved at build time.
 */
import type { Attrs, Value, ValueType } from '../graph.js';
import type { OpDef } from '../op.js';
import { formatShapeList as fmt, sizeOf, stridesOf, type Tensor } from '../tensor.js';
import { expectArity, intAttr, intsAttr, normalizeAxes, normalizeAxis, opError, tensorOf } from './common.js';

/**
 * For each flat index of `shape` (row-major), `offset + Σ coord[d]·strides[d]`:
 * the one index walk behind transpose, slice, expand and pad.
 */
function stridedIndex(shape: readonly number[], offset: number, strides: readonly number[]): Int32Array {
  const n = sizeOf(shape);
  const map = new Int32Array(n);
  const coord = new Array<number>(shape.length).fill(0);
  let at = offset;
  for (let flat = 0; flat < n; flat++) {
    map[flat] = at;
    for (let d = shape.length - 1; d >= 0; d--) {
      at += strides[d]!;
      if (++coord[d]! < shape[d]!) break;
      at -= coord[d]! * strides[d]!;
      coord[d] = 0;
    }
  }
  return map;
}

/** Reads `x` at a strided view of shape `shape`. */
function gatherView(x: Tensor, shape: readonly number[], offset: number, strides: readonly number[]): Tensor {
  const map = stridedIndex(shape, offset, strides);
  const out = new Float64Array(map.length);
  for (let i = 0; i < map.length; i++) out[i] = x.data[map[i]!]!;
  return tensorOf(x.dtype, shape, out);
}

const grads = (x: Value, g: Value | null, rule: (g: Value) => Value): Value | null => (g && x.dtype === 'f32' ? rule(g) : null);

// ------------------------------------------------------------------ reshape

function reshapeTarget(x: ValueType, attrs: Attrs): number[] {
  const shape = intsAttr('reshape', attrs, 'shape');
  const holes = shape.filter((d) => d === -1).length;
  if (holes > 1 || shape.some((d) => d < -1)) throw opError('reshape', `invalid target shape ${fmt(shape)} (dimensions ≥ 0, at most one -1)`);
  const n = sizeOf(x.shape);
  if (holes === 1) {
    const known = shape.reduce((acc, d) => (d === -1 ? acc : acc * d), 1);
    if (known === 0 || n % known !== 0) throw opError('reshape', `cannot reshape ${fmt(x.shape)} (${n} elements) to ${fmt(shape)}`);
    return shape.map((d) => (d === -1 ? n / known : d));
  }
  if (sizeOf(shape) !== n) throw opError('reshape', `cannot reshape ${fmt(x.shape)} (${n} elements) to ${fmt(shape)} (${sizeOf(shape)} elements)`);
  return shape;
}

const RESHAPE: OpDef = {
  name: 'reshape',
  doc: 'same elements in row-major order, new shape (one dimension may be -1)',
  infer(inputs, attrs) {
    expectArity('reshape', inputs, 1);
    return [{ dtype: inputs[0]!.dtype, shape: reshapeTarget(inputs[0]!, attrs) }];
  },
  evaluate([x], attrs) {
    return [tensorOf(x!.dtype, reshapeTarget(x!, attrs), x!.data.slice())];
  },
  lower(ctx, node) {
    // The resolved shape, so neither -1 nor ONNX's "0 copies the input dimension" rule applies.
    const shape = node.outputs[0]!.shape;
    ctx.emit('Reshape', [ctx.input(node, 0), ctx.shapeOf(node.outputs[0]!)], [ctx.output(node, 0)], shape.includes(0) ? { allowzero: { i: 1 } } : {});
  },
  grad(b, node, [g]) {
    const x = node.inputs[0]!;
    return [grads(x, g, (g) => b.reshape(g, x.shape))];
  },
};

// ------------------------------------------------------------------ transpose

function permOf(x: ValueType, attrs: Attrs): number[] {
  const perm = intsAttr('transpose', attrs, 'perm');
  const r = x.shape.length;
  if (perm.length !== r || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
    throw opError('transpose', `perm [${perm.join(', ')}] is not a permutation of the axes of ${fmt(x.shape)}`);
  }
  return perm;
}

const TRANSPOSE: OpDef = {
  name: 'transpose',
  doc: 'permutes axes: output axis i is input axis perm[i]',
  infer(inputs, attrs) {
    expectArity('transpose', inputs, 1);
    const perm = permOf(inputs[0]!, attrs);
    return [{ dtype: inputs[0]!.dtype, shape: perm.map((p) => inputs[0]!.shape[p]!) }];
  },
  evaluate([x], attrs) {
    const perm = permOf(x!, attrs);
    const strides = stridesOf(x!.shape);
    return [gatherView(x!, perm.map((p) => x!.shape[p]!), 0, perm.map((p) => strides[p]!))];
  },
  lower(ctx, node) {
    ctx.emit('Transpose', [ctx.input(node, 0)], [ctx.output(node, 0)], { perm: { ints: permOf(node.inputs[0]!, node.attrs) } });
  },
  grad(b, node, [g]) {
    const x = node.inputs[0]!;
    const perm = permOf(x, node.attrs);
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    return [grads(x, g, (g) => b.transpose(g, inverse))];
  },
};

// ------------------------------------------------------------------ slice

interface SlicePlan {
  /** Per input axis (unsliced axes: start 0, step 1, the whole dimension). */
  readonly start: number[];
  readonly step: number[];
  readonly out: number[];
  /** The listed axes with their clamped starts and ends, as lowered. */
  readonly axes: number[];
  readonly starts: number[];
  readonly ends: number[];
  readonly steps: number[];
}

function planSlice(x: ValueType, attrs: Attrs): SlicePlan {
  const starts = intsAttr('slice', attrs, 'starts');
  const ends = intsAttr('slice', attrs, 'ends');
  const rawAxes = intsAttr('slice', attrs, 'axes');
  const steps = attrs['steps'] === undefined ? starts.map(() => 1) : intsAttr('slice', attrs, 'steps');
  if (ends.length !== starts.length || rawAxes.length !== starts.length || steps.length !== starts.length) {
    throw opError('slice', `starts, ends, axes and steps differ in length (${starts.length}, ${ends.length}, ${rawAxes.length}, ${steps.length})`);
  }
  const bad = steps.find((s) => s <= 0);
  if (bad !== undefined) throw opError('slice', `steps must be positive, got ${bad} (input ${fmt(x.shape)})`);
  const axes = normalizeAxes('slice', rawAxes, x.shape);
  const start = x.shape.map(() => 0);
  const step = x.shape.map(() => 1);
  const out = [...x.shape];
  const clampedStarts: number[] = [];
  const clampedEnds: number[] = [];
  axes.forEach((a, i) => {
    const dim = x.shape[a]!;
    // ONNX Slice with a positive step: negative positions count from the end, then clamp to [0, dim].
    const clamp = (p: number): number => Math.min(Math.max(p < 0 ? p + dim : p, 0), dim);
    const s = clamp(starts[i]!);
    const e = clamp(ends[i]!);
    clampedStarts.push(s);
    clampedEnds.push(e);
    start[a] = s;
    step[a] = steps[i]!;
    out[a] = Math.max(0, Math.ceil((e - s) / steps[i]!));
  });
  return { start, step, out, axes, starts: clampedStarts, ends: clampedEnds, steps };
}

const SLICE: OpDef = {
  name: 'slice',
  doc: 'x[starts:ends:steps] along axes (ONNX Slice semantics, positive steps only)',
  infer(inputs, attrs) {
    expectArity('slice', inputs, 1);
    return [{ dtype: inputs[0]!.dtype, shape: planSlice(inputs[0]!, attrs).out }];
  },
  evaluate([x], attrs) {
    const plan = planSlice(x!, attrs);
    const strides = stridesOf(x!.shape);
    const offset = plan.start.reduce((acc, s, d) => acc + s * strides[d]!, 0);
    return [gatherView(x!, plan.out, offset, strides.map((s, d) => s * plan.step[d]!))];
  },
  lower(ctx, node) {
    const plan = planSlice(node.inputs[0]!, node.attrs);
    ctx.emit(
      'Slice',
      [ctx.input(node, 0), ctx.intsOf(node, 'starts', plan.starts), ctx.intsOf(node, 'ends', plan.ends), ctx.constInt64(plan.axes), ctx.constInt64(plan.steps)],
      [ctx.output(node, 0)],
    );
  },
  grad(b, node, [g]) {
    const x = node.inputs[0]!;
    return [
      grads(x, g, (g) => {
        const plan = planSlice(x, node.attrs);
        if (sizeOf(plan.out) === 0) return b.full(x.shape, 0);
        // A step s > 1 along an axis: interleave s − 1 zeros after each element (a new axis,
        // padded, then merged), so element i lands at i·s; then trim and pad to the input.
        let cur = g;
        for (let a = 0; a < x.shape.length; a++) {
          const s = plan.step[a]!;
          if (s === 1) continue;
          const shape = cur.shape;
          const split = [...shape.slice(0, a + 1), 1, ...shape.slice(a + 1)];
          const pads = split.map(() => 0).concat(split.map((_, d) => (d === a + 1 ? s - 1 : 0)));
          const merged = [...shape];
          merged[a] = shape[a]! * s;
          cur = b.reshape(b.pad(b.reshape(cur, split), pads), merged);
        }
        // cur[a] now holds element i at position i·step; it is at most dim − start long after trimming.
        const room = x.shape.map((d, a) => d - plan.start[a]!);
        const trimAxes = x.shape.map((_, a) => a).filter((a) => cur.shape[a]! > room[a]!);
        if (trimAxes.length) cur = b.slice(cur, trimAxes.map(() => 0), trimAxes.map((a) => room[a]!), trimAxes);
        const trimmed = cur;
        return b.pad(trimmed, [...plan.start, ...x.shape.map((_, a) => room[a]! - trimmed.shape[a]!)]);
      }),
    ];
  },
};

// ------------------------------------------------------------------ concat

function concatAxis(inputs: readonly ValueType[], attrs: Attrs): number {
  if (inputs.length === 0) throw opError('concat', 'needs at least one input');
  const first = inputs[0]!;
  if (first.shape.length === 0) throw opError('concat', 'cannot concatenate scalars');
  const axis = normalizeAxis('concat', intAttr('concat', attrs, 'axis'), first.shape.length, first.shape);
  for (const t of inputs) {
    if (t.dtype !== first.dtype) throw opError('concat', `inputs have different dtypes: ${first.dtype} and ${t.dtype}`);
    if (t.shape.length !== first.shape.length || t.shape.some((d, i) => i !== axis && d !== first.shape[i])) {
      throw opError('concat', `shapes differ outside axis ${axis}: ${fmt(first.shape)} and ${fmt(t.shape)}`);
    }
  }
  return axis;
}

const CONCAT: OpDef = {
  name: 'concat',
  doc: 'joins the inputs along axis (variadic)',
  infer(inputs, attrs) {
    const axis = concatAxis(inputs, attrs);
    const shape = [...inputs[0]!.shape];
    shape[axis] = inputs.reduce((acc, t) => acc + t.shape[axis]!, 0);
    return [{ dtype: inputs[0]!.dtype, shape }];
  },
  evaluate(inputs, attrs) {
    const axis = concatAxis(inputs, attrs);
    const shape = [...inputs[0]!.shape];
    shape[axis] = inputs.reduce((acc, t) => acc + t.shape[axis]!, 0);
    const outer = sizeOf(shape.slice(0, axis));
    const rowOut = sizeOf(shape.slice(axis));
    const out = new Float64Array(sizeOf(shape));
    let col = 0;
    for (const t of inputs) {
      const row = sizeOf(t.shape.slice(axis));
      for (let o = 0; o < outer; o++) out.set(t.data.subarray(o * row, (o + 1) * row), o * rowOut + col);
      col += row;
    }
    return [tensorOf(inputs[0]!.dtype, shape, out)];
  },
  lower(ctx, node) {
    const axis = concatAxis(node.inputs, node.attrs);
    ctx.emit('Concat', node.inputs.map((_, i) => ctx.input(node, i)), [ctx.output(node, 0)], { axis: { i: axis } });
  },
  grad(b, node, [g]) {
    const axis = concatAxis(node.inputs, node.attrs);
    let at = 0;
    return node.inputs.map((x) => {
      const from = at;
      at += x.shape[axis]!;
      return grads(x, g, (g) => b.slice(g, [from], [from + x.shape[axis]!], [axis]));
    });
  },
};

// ------------------------------------------------------------------ expand

function expandTarget(x: ValueType, attrs: Attrs): number[] {
  const shape = intsAttr('expand', attrs, 'shape');
  const lead = shape.length - x.shape.length;
  if (lead < 0 || x.shape.some((d, i) => d !== 1 && d !== shape[lead + i])) throw opError('expand', `cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
  return shape;
}

const EXPAND: OpDef = {
  name: 'expand',
  doc: 'broadcasts x to shape (NumPy rules, one way)',
  infer(inputs, attrs) {
    expectArity('expand', inputs, 1);
    return [{ dtype: inputs[0]!.dtype, shape: expandTarget(inputs[0]!, attrs) }];
  },
  evaluate([x], attrs) {
    const shape = expandTarget(x!, attrs);
    const lead = shape.length - x!.shape.length;
    const strides = stridesOf(x!.shape);
    return [gatherView(x!, shape, 0, shape.map((_, d) => (d < lead || x!.shape[d - lead] === 1 ? 0 : strides[d - lead]!)))];
  },
  lower(ctx, node) {
    ctx.emit('Expand', [ctx.input(node, 0), ctx.shapeOf(node.outputs[0]!)], [ctx.output(node, 0)]);
  },
  grad(b, node, [g]) {
    const x = node.inputs[0]!;
    return [grads(x, g, (g) => b.sumToShape(g, x.shape))];
  },
};

// ------------------------------------------------------------------ pad

function padsOf(x: ValueType, attrs: Attrs): number[] {
  const pads = intsAttr('pad', attrs, 'pads');
  if (pads.length !== 2 * x.shape.length) throw opError('pad', `pads [${pads.join(', ')}] must have ${2 * x.shape.length} entries for input ${fmt(x.shape)}`);
  if (pads.some((p) => p < 0)) throw opError('pad', `pads must be non-negative, got [${pads.join(', ')}] for input ${fmt(x.shape)}`);
  return pads;
}

const PAD: OpDef = {
  name: 'pad',
  doc: 'zero padding: pads = [begin_0, …, begin_n-1, end_0, …, end_n-1]',
  infer(inputs, attrs) {
    expectArity('pad', inputs, 1);
    const x = inputs[0]!;
    const pads = padsOf(x, attrs);
    const r = x.shape.length;
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => d + pads[i]! + pads[r + i]!) }];
  },
  evaluate([x], attrs) {
    const pads = padsOf(x!, attrs);
    const r = x!.shape.length;
    const shape = x!.shape.map((d, i) => d + pads[i]! + pads[r + i]!);
    const strides = stridesOf(shape);
    const map = stridedIndex(x!.shape, pads.slice(0, r).reduce((acc, p, d) => acc + p * strides[d]!, 0), strides);
    const out = new Float64Array(sizeOf(shape));
    for (let i = 0; i < map.length; i++) out[map[i]!] = x!.data[i]!;
    return [tensorOf(x!.dtype, shape, out)];
  },
  lower(ctx, node) {
    // Mode defaults to 'constant' and the constant to zero.
    ctx.emit('Pad', [ctx.input(node, 0), ctx.constInt64(padsOf(node.inputs[0]!, node.attrs))], [ctx.output(node, 0)]);
  },
  grad(b, node, [g]) {
    const x = node.inputs[0]!;
    const pads = padsOf(x, node.attrs);
    const r = x.shape.length;
    const axes = x.shape.map((_, i) => i);
    return [grads(x, g, (g) => b.slice(g, pads.slice(0, r), axes.map((i) => pads[i]! + x.shape[i]!), axes))];
  },
};

export const SHAPE_OPS: readonly OpDef[] = [RESHAPE, TRANSPOSE, SLICE, CONCAT, EXPAND, PAD];
