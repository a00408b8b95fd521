/**
 * The IR dtypes beyond f32/i64/bool — f16, bf16, i32, i8, u8 — end to end: a
 * graph with casts f32 → f16 → f32 and f32 → bf16 → f32, an i32 input cast to
 * f32, i64, i8 and u8, an f16 graph input and output, f16/bf16/i8/u8/i32
 * initializers (raw bytes) and an f16 constant, emitted and run by
 * onnxruntime-node, before and after `optimize` (which folds the constant's
 * cast). Every expected number is written out by hand (IEEE half precision and
 * bfloat16, round to nearest even).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../src/ir/builder.js';
import { evaluateGraph } from '../../../src/ir/evaluate.js';
import type { Graph } from '../../../src/ir/graph.js';
import { optimize } from '../../../src/ir/passes/index.js';
import { printGraph } from '../../../src/ir/printer.js';
import { makeTensor, type Tensor } from '../../../src/ir/tensor.js';
import { runOnce } from '../../../src/runtime/ort.js';
import { emitModel, type InitializerData } from '../../../targets/onnx/emit.js';
import { onnx } from '../../../targets/onnx/proto.js';

// 1/3, past f16's largest finite (65504) but rounding down to it, the halfway point above it, below half of
// f16's smallest subnormal, exact, 0.1.
const X = [1 / 3, 65519, 65520, 1e-8, -2.5, 0.1];
const N = [7, -3, 2147483647, -2147483648];

const EXPECTED: Record<string, { dtype: string; values: number[] }> = {
  // f16: 0x3555, 0x7bff, 0x7c00 (a tie: rounds to the even neighbour, Infinity), 0x0000, 0xc100, 0x2e66
  via_f16: { dtype: 'f32', values: [0.333251953125, 65504, Infinity, 0, -2.5, 0.0999755859375] },
  // bf16: 0x3eab, 0x4780, 0x4780, 0x322c, 0xc020, 0x3dcd
  via_bf16: { dtype: 'f32', values: [0.333984375, 65536, 65536, 1.0011717677116394e-8, -2.5, 0.10009765625] },
  // Truncation toward zero.
  x_i32: { dtype: 'i32', values: [0, 65519, 65520, 0, -2, 0] },
  // 2147483647 is not an f32: it rounds to 2^31.
  n_f32: { dtype: 'f32', values: [7, -3, 2147483648, -2147483648] },
  n_i64: { dtype: 'i64', values: [7, -3, 2147483647, -2147483648] },
  // Two's complement wrap: 2147483647 = 0x7fffffff → 0xff; −2^31 → 0x00; −3 → 0xfd (253 as u8).
  n_i8: { dtype: 'i8', values: [7, -3, -1, 0] },
  n_u8: { dtype: 'u8', values: [7, 253, 255, 0] },
  // The f16 input comes back as an f16 output: fed 1/3 and 65519, it holds their f16 roundings.
  h_out: { dtype: 'f16', values: [0.333251953125, 65504] },
  // Initializers: f16 0x3c00 0xc000 0x3555, bf16 0x3f80 0x4049, i8 -128 127, u8 0 200, i32 -5 123456.
  w16_f32: { dtype: 'f32', values: [1, -2, 0.333251953125] },
  wbf16_f32: { dtype: 'f32', values: [1, 3.140625] },
  w8_f32: { dtype: 'f32', values: [-128, 127, 0, 200, -5, 123456] },
  // The f16 constant 0.1, cast to f32.
  c16: { dtype: 'f32', values: [0.0999755859375] },
};

function graph(): Graph {
  const b = new GraphBuilder('dtypes');
  const x = b.input('x', 'f32', [6]);
  const n = b.input('n', 'i32', [4]);
  const h = b.input('h', 'f16', [2]);
  const w16 = b.input('w16', 'f16', [3]);
  const wbf16 = b.input('wbf16', 'bf16', [2]);
  const wi8 = b.input('wi8', 'i8', [2]);
  const wu8 = b.input('wu8', 'u8', [2]);
  const wi32 = b.input('wi32', 'i32', [2]);
  b.output('via_f16', b.cast(b.cast(x, 'f16'), 'f32'));
  b.output('via_bf16', b.cast(b.cast(x, 'bf16'), 'f32'));
  b.output('x_i32', b.cast(x, 'i32'));
  b.output('n_f32', b.cast(n, 'f32'));
  b.output('n_i64', b.cast(n, 'i64'));
  b.output('n_i8', b.cast(n, 'i8'));
  b.output('n_u8', b.cast(n, 'u8'));
  b.output('h_out', h);
  b.output('w16_f32', b.cast(w16, 'f32'));
  b.output('wbf16_f32', b.cast(wbf16, 'f32'));
  b.output('w8_f32', b.concat([b.cast(wi8, 'f32'), b.cast(wu8, 'f32'), b.cast(wi32, 'f32')], 0));
  b.output('c16', b.cast(b.constant(makeTensor('f16', [1], [0.1])), 'f32'));
  return b.build();
}

const INITIALIZERS = new Map<string, InitializerData>([
  ['w16', Uint16Array.of(0x3c00, 0xc000, 0x3555)],
  ['wbf16', Uint16Array.of(0x3f80, 0x4049)],
  ['wi8', Int8Array.of(-128, 127)],
  ['wu8', Uint8Array.of(0, 200)],
  ['wi32', Int32Array.of(-5, 123456)],
]);

const feeds = (): Map<string, Tensor> =>
  new Map([
    ['x', makeTensor('f32', [6], X)],
    ['n', makeTensor('i32', [4], N)],
    ['h', makeTensor('f16', [2], [1 / 3, 65519])],
  ]);

function expectResults(out: Map<string, Tensor>, what: string): void {
  expect([...out.keys()].sort(), what).toEqual(Object.keys(EXPECTED).sort());
  for (const [name, want] of Object.entries(EXPECTED)) {
    const t = out.get(name)!;
    expect(t.dtype, `${what}: ${name}`).toBe(want.dtype);
    expect(Array.from(t.data), `${what}: ${name}`).toEqual(want.values);
  }
}

describe('f16, bf16, i32, i8, u8 through ONNX', () => {
  it('casts, inputs, outputs, initializers and a constant give the hand-computed values in onnxruntime-node', async () => {
    const g = graph();
    const model = emitModel(g, { initializers: INITIALIZERS });
    const decoded = onnx.ModelProto.decode(model.bytes).graph!;
    const T = onnx.TensorProto.DataType;
    // Element types as declared: inputs, outputs and raw initializer bytes (2 per f16/bf16 element).
    expect(decoded.input!.map((i) => [i.name, i.type!.tensorType!.elemType])).toEqual([
      ['x', T.FLOAT],
      ['n', T.INT32],
      ['h', T.FLOAT16],
    ]);
    expect(decoded.output!.find((o) => o.name === 'n_u8')!.type!.tensorType!.elemType).toBe(T.UINT8);
    const inits = new Map(decoded.initializer!.map((t) => [t.name, t]));
    expect(inits.get('wbf16')!.dataType).toBe(T.BFLOAT16);
    expect(Array.from(inits.get('wbf16')!.rawData!)).toEqual([0x80, 0x3f, 0x49, 0x40]);
    expect(Array.from(inits.get('w16')!.rawData!)).toEqual([0x00, 0x3c, 0x00, 0xc0, 0x55, 0x35]);
    expect(inits.get('wi8')!.dataType).toBe(T.INT8);
    expectResults(await runOnce(model.bytes, feeds()), 'onnxruntime');

    // After optimize: the constant's cast is folded (the reference evaluator rounds the f16 constant as ONNX does).
    const { graph: opt } = optimize(g);
    expect(opt.nodes.filter((n) => n.op === 'cast').length).toBe(g.nodes.filter((n) => n.op === 'cast').length - 1);
    expectResults(await runOnce(emitModel(opt, { initializers: INITIALIZERS }).bytes, feeds()), 'onnxruntime, optimized');
  });

  it('the reference evaluator computes the same casts', () => {
    const f = feeds();
    f.set('h', makeTensor('f16', [2], [0.333251953125, 65504]));
    f.set('w16', makeTensor('f16', [3], [1, -2, 0.333251953125]));
    f.set('wbf16', makeTensor('bf16', [2], [1, 3.140625]));
    f.set('wi8', makeTensor('i8', [2], [-128, 127]));
    f.set('wu8', makeTensor('u8', [2], [0, 200]));
    f.set('wi32', makeTensor('i32', [2], [-5, 123456]));
    const out = evaluateGraph(graph(), f);
    // The reference keeps f32 in float64: only n_f32's 2147483647 differs (no f32 rounding there).
    const want = { ...EXPECTED, n_f32: { dtype: 'f32', values: [7, -3, 2147483647, -2147483648] } };
    for (const [name, w] of Object.entries(want)) {
      expect(out.get(name)!.dtype, name).toBe(w.dtype);
      expect(Array.from(out.get(name)!.data), name).toEqual(w.values);
    }
  });

  it('the textual IR shows the new dtypes; a cast to an unknown dtype is refused by the type rule', () => {
    const text = printGraph(graph());
    expect(text).toContain('%3 w16: f16[3],');
    expect(text).toContain('%4 wbf16: bf16[2],');
    expect(text).toMatch(/= cast\(%1, to="i8"\) +: i8\[4\]/);
    const b = new GraphBuilder('bad');
    expect(() => b.one('cast', [b.input('x', 'f32', [1])], { to: 'f8' })).toThrow(
      'cast: attribute to must be one of f32, f16, bf16, i64, i32, i8, u8, bool, got "f8"',
    );
  });

  it('an initializer whose typed array does not match its dtype is refused', () => {
    expect(() => emitModel(graph(), { initializers: new Map<string, InitializerData>([['w16', Float32Array.of(1, 2, 3)]]) })).toThrow(
      'initializer w16 is f16, carried as Uint16Array, but its data is Float32Array',
    );
  });
});
