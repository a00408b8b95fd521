/**
 * Elementwise ops: constants, unary float functions, broadcasting binary
 * arithmetic, comparisons, logic, `where` and `cast`.
 */
import type { OpBuilder } from '../opBuilder.js';
import type { Node, Value, ValueType } from '../graph.js';
import type { LoweringContext, OpDef } from '../op.js';
import { broadcastIndex, broadcastShapes, castValue, DTYPE_INFO, DTYPES, formatShapeList as fmt, sizeOf, type DType, type Tensor } from '../tensor.js';
import { describe, expectArity, expectDtype, isTensor, opError, tensorOf } from './common.js';

/** Emits a one-input, one-output ONNX node for an op of the same arity. */
export function lowerAs(onnxOp: string, attrs?: Parameters<LoweringContext['emit']>[3]) {
  return (ctx: LoweringContext, node: Node): void => {
    ctx.emit(onnxOp, node.inputs.map((_, i) => ctx.input(node, i)), [ctx.output(node, 0)], attrs);
  };
}

// ------------------------------------------------------------------ unary float ops

type UnaryGrad = (b: OpBuilder, x: Value, y: Value, g: Value) => Value;
type UnaryLowering = string | ((ctx: LoweringContext, x: string, y: string) => void);

function unaryFloat(name: string, doc: string, ref: (x: number) => number, lowering: UnaryLowering, gradRule: UnaryGrad): OpDef {
  return {
    name,
    doc,
    infer(inputs) {
      expectArity(name, inputs, 1);
      expectDtype(name, inputs[0]!, ['f32']);
      return [{ dtype: 'f32', shape: inputs[0]!.shape }];
    },
    evaluate([x]) {
      const out = new Float64Array(x!.data.length);
      for (let i = 0; i < out.length; i++) out[i] = ref(x!.data[i]!);
      return [tensorOf('f32', x!.shape, out)];
    },
    lower(ctx, node) {
      if (typeof lowering === 'string') ctx.emit(lowering, [ctx.input(node, 0)], [ctx.output(node, 0)]);
      else lowering(ctx, ctx.input(node, 0), ctx.output(node, 0));
    },
    grad(b, node, [g]) {
      return [g ? gradRule(b, node.inputs[0]!, node.outputs[0]!, g) : null];
    },
  };
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

/** Numerically stable log(1 + exp(x)). */
function softplusRef(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

function sigmoidRef(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

function geluRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_K * x * x * x)));
}

/** Scalar f32 constants in a lowering. */
function cf(ctx: LoweringContext, v: number): string {
  return ctx.constFloat([v], []);
}

const UNARY_OPS: OpDef[] = [
  unaryFloat('neg', '-x', (x) => -x, 'Neg', (b, _x, _y, g) => b.neg(g)),
  unaryFloat('exp', 'e^x', Math.exp, 'Exp', (b, _x, y, g) => b.mul(g, y)),
  unaryFloat('log', 'natural logarithm', Math.log, 'Log', (b, x, _y, g) => b.div(g, x)),
  unaryFloat('sqrt', 'square root', Math.sqrt, 'Sqrt', (b, _x, y, g) => b.div(g, b.mul(y, b.scalar(2)))),
  unaryFloat('reciprocal', '1 / x', (x) => 1 / x, 'Reciprocal', (b, _x, y, g) => b.neg(b.mul(g, b.mul(y, y)))),
  unaryFloat('tanh', 'hyperbolic tangent', Math.tanh, 'Tanh', (b, _x, y, g) => b.mul(g, b.sub(b.scalar(1), b.mul(y, y)))),
  unaryFloat('sigmoid', '1 / (1 + e^-x)', sigmoidRef, 'Sigmoid', (b, _x, y, g) => b.mul(g, b.mul(y, b.sub(b.scalar(1), y)))),
  unaryFloat('relu', 'max(x, 0)', (x) => (x > 0 ? x : 0), 'Relu', (b, x, _y, g) => b.where(b.greater(x, b.scalar(0)), g, b.scalar(0))),
  unaryFloat(
    'gelu',
    'GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))',
    geluRef,
    (ctx, x, y) => {
      // Opset 17 has no Gelu: compose it.
      const [x2] = ctx.emit('Mul', [x, x], 1);
      const [x3] = ctx.emit('Mul', [x2!, x], 1);
      const [kx3] = ctx.emit('Mul', [x3!, cf(ctx, GELU_K)], 1);
      const [inner] = ctx.emit('Add', [x, kx3!], 1);
      const [u] = ctx.emit('Mul', [inner!, cf(ctx, SQRT_2_OVER_PI)], 1);
      const [t] = ctx.emit('Tanh', [u!], 1);
      const [onePlus] = ctx.emit('Add', [t!, cf(ctx, 1)], 1);
      const [halfX] = ctx.emit('Mul', [x, cf(ctx, 0.5)], 1);
      ctx.emit('Mul', [halfX!, onePlus!], [y]);
    },
    (b, x, _y, g) => {
      // d/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3k·x²), t = tanh(c·(x + k·x³)).
      const x2 = b.mul(x, x);
      const t = b.tanh(b.mul(b.scalar(SQRT_2_OVER_PI), b.add(x, b.mul(b.scalar(GELU_K), b.mul(x2, x)))));
      const left = b.mul(b.scalar(0.5), b.add(b.scalar(1), t));
      const dt = b.sub(b.scalar(1), b.mul(t, t));
      const du = b.add(b.scalar(1), b.mul(b.scalar(3 * GELU_K), x2));
      const right = b.mul(b.mul(b.scalar(0.5 * SQRT_2_OVER_PI), x), b.mul(dt, du));
      return b.mul(g, b.add(left, right));
    },
  ),
  unaryFloat(
    'silu',
    'x·sigmoid(x)',
    (x) => x * sigmoidRef(x),
    (ctx, x, y) => {
      const [s] = ctx.emit('Sigmoid', [x], 1);
      ctx.emit('Mul', [x, s!], [y]);
    },
    (b, x, _y, g) => {
      const s = b.sigmoid(x);
      return b.mul(g, b.mul(s, b.add(b.scalar(1), b.mul(x, b.sub(b.scalar(1), s)))));
    },
  ),
  unaryFloat('abs', '|x|', Math.abs, 'Abs', (b, x, _y, g) => {
    const zero = b.scalar(0);
    return b.where(b.greater(x, zero), g, b.where(b.less(x, zero), b.neg(g), zero));
  }),
  // onnxruntime's Softplus is stable (CPU: softplus(±1000) = 1000 / 0; the CUDA kernel branches on the sign), so it is used as is.
  unaryFloat('softplus', 'log(1 + e^x), computed stably', softplusRef, 'Softplus', (b, x, _y, g) => b.mul(g, b.sigmoid(x))),
  unaryFloat(
    'log_sigmoid',
    'log(sigmoid(x)) = −softplus(−x), computed stably',
    (x) => -softplusRef(-x),
    (ctx, x, y) => {
      // Log(Sigmoid(x)) underflows to −inf (ORT's Sigmoid is exactly 0 below about −20): use −Softplus(−x).
      const [nx] = ctx.emit('Neg', [x], 1);
      const [sp] = ctx.emit('Softplus', [nx!], 1);
      ctx.emit('Neg', [sp!], [y]);
    },
    (b, x, _y, g) => b.mul(g, b.sigmoid(b.neg(x))),
  ),
  unaryFloat('cos', 'cosine', Math.cos, 'Cos', (b, x, _y, g) => b.neg(b.mul(g, b.sin(x)))),
  unaryFloat('sin', 'sine', Math.sin, 'Sin', (b, x, _y, g) => b.mul(g, b.cos(x))),
];

// ------------------------------------------------------------------ broadcasting binary ops

function broadcastTypes(name: string, a: ValueType, b: ValueType, sep = 'and'): number[] {
  const shape = broadcastShapes(a.shape, b.shape);
  if (!shape) throw opError(name, `shapes do not broadcast: ${fmt(a.shape)} ${sep} ${fmt(b.shape)}`);
  return shape;
}

function sameDtypes(name: string, a: ValueType, b: ValueType, allowed: readonly DType[]): void {
  if (a.dtype !== b.dtype || !allowed.includes(a.dtype)) {
    throw opError(name, `expects two ${allowed.join(' or ')} inputs of the same dtype, got ${describe(a)} and ${describe(b)}`);
  }
}

function evalBinary(a: Tensor, b: Tensor, dtype: DType, f: (x: number, y: number) => number): Tensor {
  const shape = broadcastShapes(a.shape, b.shape)!;
  const ia = broadcastIndex(a.shape, shape);
  const ib = broadcastIndex(b.shape, shape);
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = f(a.data[ia[i]!]!, b.data[ib[i]!]!);
  return tensorOf(dtype, shape, out);
}

/** Gradients of a binary op at the output's shape (null: none); the factory sums them to each input's shape. */
type BinaryGrad = (b: OpBuilder, x: Value, y: Value, out: Value, g: Value, node: Node) => [Value | null, Value | null];

function binary(name: string, doc: string, dtypes: readonly DType[], onnxOp: string, ref: (x: number, y: number) => number, gradRule: BinaryGrad): OpDef {
  return {
    name,
    doc,
    infer(inputs) {
      expectArity(name, inputs, 2);
      sameDtypes(name, inputs[0]!, inputs[1]!, dtypes);
      return [{ dtype: inputs[0]!.dtype, shape: broadcastTypes(name, inputs[0]!, inputs[1]!) }];
    },
    evaluate([a, b]) {
      return [evalBinary(a!, b!, a!.dtype, ref)];
    },
    lower: lowerAs(onnxOp),
    grad(b, node, [g]) {
      const [x, y] = node.inputs as [Value, Value];
      if (!g || x.dtype !== 'f32') return [null, null];
      const [gx, gy] = gradRule(b, x, y, node.outputs[0]!, g, node);
      return [gx && b.sumToShape(gx, x.shape), gy && b.sumToShape(gy, y.shape)];
    },
  };
}

const isConstant = (v: Value): boolean => v.producer?.op === 'constant';

const BINARY_OPS: OpDef[] = [
  binary('add', 'a + b, broadcasting', ['f32', 'i64'], 'Add', (x, y) => x + y, (_b, _x, _y, _o, g) => [g, g]),
  binary('sub', 'a − b, broadcasting', ['f32', 'i64'], 'Sub', (x, y) => x - y, (b, _x, _y, _o, g) => [g, b.neg(g)]),
  binary('mul', 'a · b, broadcasting', ['f32', 'i64'], 'Mul', (x, y) => x * y, (b, x, y, _o, g) => [b.mul(g, y), b.mul(g, x)]),
  binary('div', 'a / b, broadcasting', ['f32'], 'Div', (x, y) => x / y, (b, _x, y, out, g) => [b.div(g, y), b.neg(b.div(b.mul(g, out), y))]),
  binary('pow', 'a^b, broadcasting (a > 0 where b is differentiated)', ['f32'], 'Pow', Math.pow, (b, x, y, out, g) => [
    b.mul(g, b.mul(y, b.pow(x, b.sub(y, b.scalar(1))))),
    // A constant exponent (x², x^0.5) needs no gradient, and log of a negative base would be NaN.
    isConstant(y) ? null : b.mul(g, b.mul(out, b.log(x))),
  ]),
  binary('maximum', 'elementwise max(a, b), broadcasting; the gradient goes to a on ties', ['f32'], 'Max', Math.max, (b, x, y, _o, g) => {
    const pickX = b.not(b.less(x, y));
    return [b.where(pickX, g, b.scalar(0)), b.where(pickX, b.scalar(0), g)];
  }),
  binary('minimum', 'elementwise min(a, b), broadcasting; the gradient goes to a on ties', ['f32'], 'Min', Math.min, (b, x, y, _o, g) => {
    const pickX = b.not(b.greater(x, y));
    return [b.where(pickX, g, b.scalar(0)), b.where(pickX, b.scalar(0), g)];
  }),
];

// ------------------------------------------------------------------ comparisons and logic (no gradients)

function boolBinary(name: string, doc: string, dtypes: readonly DType[], onnxOp: string, ref: (x: number, y: number) => boolean): OpDef {
  return {
    name,
    doc,
    infer(inputs) {
      expectArity(name, inputs, 2);
      sameDtypes(name, inputs[0]!, inputs[1]!, dtypes);
      return [{ dtype: 'bool', shape: broadcastTypes(name, inputs[0]!, inputs[1]!) }];
    },
    evaluate([a, b]) {
      return [evalBinary(a!, b!, 'bool', (x, y) => (ref(x, y) ? 1 : 0))];
    },
    lower: lowerAs(onnxOp),
  };
}

const LOGIC_OPS: OpDef[] = [
  boolBinary('less', 'a < b, broadcasting, as bool', ['f32', 'i64'], 'Less', (x, y) => x < y),
  boolBinary('greater', 'a > b, broadcasting, as bool', ['f32', 'i64'], 'Greater', (x, y) => x > y),
  boolBinary('equal', 'a == b, broadcasting, as bool', ['f32', 'i64', 'bool'], 'Equal', (x, y) => x === y),
  boolBinary('and', 'logical and, broadcasting', ['bool'], 'And', (x, y) => x !== 0 && y !== 0),
  boolBinary('or', 'logical or, broadcasting', ['bool'], 'Or', (x, y) => x !== 0 || y !== 0),
  {
    name: 'not',
    doc: 'logical not',
    infer(inputs) {
      expectArity('not', inputs, 1);
      expectDtype('not', inputs[0]!, ['bool']);
      return [{ dtype: 'bool', shape: inputs[0]!.shape }];
    },
    evaluate([x]) {
      return [tensorOf('bool', x!.shape, x!.data.map((v) => (v !== 0 ? 0 : 1)))];
    },
    lower: lowerAs('Not'),
  },
];

// ------------------------------------------------------------------ constant, where, cast

const OTHER_OPS: OpDef[] = [
  {
    name: 'constant',
    doc: 'a literal tensor (attribute value)',
    infer(inputs, attrs) {
      expectArity('constant', inputs, 0);
      const v = attrs['value'];
      if (!isTensor(v)) throw opError('constant', 'attribute value must be a tensor');
      if (!DTYPES.includes(v.dtype)) throw opError('constant', `unknown dtype ${String(v.dtype)}`);
      if (v.data.length !== sizeOf(v.shape)) throw opError('constant', `value has ${v.data.length} elements, its shape ${fmt(v.shape)} needs ${sizeOf(v.shape)}`);
      return [{ dtype: v.dtype, shape: v.shape }];
    },
    evaluate(_inputs, attrs) {
      const v = attrs['value'] as Tensor;
      // The values the ONNX constant holds: rounded to f16/bf16, integers converted (f32 stays float64, as everywhere here).
      return [tensorOf(v.dtype, v.shape, v.dtype === 'f32' ? v.data.slice() : v.data.map(castValue(v.dtype)))];
    },
    lower(ctx, node) {
      ctx.emit('Constant', [], [ctx.output(node, 0)], { value: { t: node.attrs['value'] as Tensor } });
    },
  },
  {
    name: 'where',
    doc: 'cond ? a : b elementwise, broadcasting all three',
    infer(inputs) {
      expectArity('where', inputs, 3);
      const [c, a, b] = inputs as [ValueType, ValueType, ValueType];
      expectDtype('where', c, ['bool'], 'condition');
      if (a.dtype !== b.dtype) throw opError('where', `branches have different dtypes: ${describe(a)} and ${describe(b)}`);
      const ab = broadcastShapes(a.shape, b.shape);
      const shape = ab && broadcastShapes(c.shape, ab);
      if (!shape) throw opError('where', `shapes do not broadcast: ${fmt(c.shape)}, ${fmt(a.shape)} and ${fmt(b.shape)}`);
      return [{ dtype: a.dtype, shape }];
    },
    evaluate([c, a, b]) {
      const shape = broadcastShapes(c!.shape, broadcastShapes(a!.shape, b!.shape)!)!;
      const ic = broadcastIndex(c!.shape, shape);
      const ia = broadcastIndex(a!.shape, shape);
      const ib = broadcastIndex(b!.shape, shape);
      const out = new Float64Array(sizeOf(shape));
      for (let i = 0; i < out.length; i++) out[i] = c!.data[ic[i]!] !== 0 ? a!.data[ia[i]!]! : b!.data[ib[i]!]!;
      return [tensorOf(a!.dtype, shape, out)];
    },
    lower: lowerAs('Where'),
    grad(b, node, [g]) {
      const [c, x, y] = node.inputs as [Value, Value, Value];
      if (!g || x.dtype !== 'f32') return [null, null, null];
      const zero = b.scalar(0);
      return [null, b.sumToShape(b.where(c, g, zero), x.shape), b.sumToShape(b.where(c, zero, g), y.shape)];
    },
  },
  {
    name: 'cast',
    doc: 'converts to dtype `to` (→ f16/bf16 rounds to nearest even; → integers truncates toward zero; → bool is x ≠ 0)',
    infer(inputs, attrs) {
      expectArity('cast', inputs, 1);
      const to = attrs['to'];
      if (typeof to !== 'string' || !DTYPES.includes(to as DType)) throw opError('cast', `attribute to must be one of ${DTYPES.join(', ')}, got ${JSON.stringify(to)}`);
      return [{ dtype: to as DType, shape: inputs[0]!.shape }];
    },
    evaluate([x], attrs) {
      const to = attrs['to'] as DType;
      return [tensorOf(to, x!.shape, x!.data.map(castValue(to)))];
    },
    lower(ctx, node) {
      ctx.emit('Cast', [ctx.input(node, 0)], [ctx.output(node, 0)], { to: { i: DTYPE_INFO[node.attrs['to'] as DType].onnx } });
    },
  },
];

export const ELEMENTWISE_OPS: readonly OpDef[] = [...OTHER_OPS, ...UNARY_OPS, ...BINARY_OPS, ...LOGIC_OPS];
