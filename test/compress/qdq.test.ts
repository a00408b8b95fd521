/**
 * The int8 QDQ form (src/ir/passes/qdq.ts): which matmuls are sites, the
 * fake-quantized graph against a hand-written int8 computation, and the int8
 * form (int8 weights + DequantizeLinear, activations QuantizeLinear →
 * DequantizeLinear) run by onnxruntime against the fake-quantized graph's
 * float64 reference, on a hand-built graph and on std.nn's Transformer.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/index.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import type { Graph } from '../../src/ir/graph.js';
import { lowerForward } from '../../src/ir/lower/inferenceStage.js';
import { quantizeValue } from '../../src/ir/ops/quant.js';
import { optimize } from '../../src/ir/passes/index.js';
import { activationScaleInput, foldWeightQuantization, insertFakeQuant, quantizedWeightInputs, quantSites } from '../../src/ir/passes/qdq.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import { verifyGraph } from '../../src/ir/verify.js';
import { runOnce } from '../../src/runtime/ort.js';
import { Prng } from '../../src/runtime/prng.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { onnx } from '../../targets/onnx/proto.js';

/** y = relu(x @ w1 + b1) @ w2, logits = y @ head: two sites (w1, w2), the head stays float. */
function mlp(): Graph {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', 'f32', [2, 4]);
  const w1 = b.input('m.up.w', 'f32', [4, 3]);
  const b1 = b.input('m.up.b', 'f32', [3]);
  const w2 = b.input('m.down.w', 'f32', [3, 4]);
  const head = b.input('m.head.w', 'f32', [4, 5]);
  const h = b.relu(b.add(b.matmul(x, w1), b1));
  b.output('logits', b.matmul(b.matmul(h, w2), head));
  return b.build();
}

function random(shape: readonly number[], prng: Prng, std = 1): Tensor {
  return makeTensor('f32', shape, Array.from({ length: shape.reduce((a, c) => a * c, 1) }, () => std * prng.normal()));
}

function weightsOf(g: Graph, seed: number, skip: (name: string) => boolean = () => false): Map<string, Tensor> {
  const prng = new Prng(seed);
  const out = new Map<string, Tensor>();
  for (const v of g.inputs) if (v.inputName!.includes('.') && !skip(v.inputName!)) out.set(v.inputName!, random(v.shape, prng, 0.5));
  return out;
}

const f32Map = (m: ReadonlyMap<string, Tensor>): Map<string, Float32Array> => new Map([...m].map(([k, t]) => [k, Float32Array.from(t.data)]));

/** Matrix product of row-major [m, k] and [k, n]. */
function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): number[] {
  const out = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j]! += a[i * k + p]! * b[p * n + j]!;
  return out;
}

/** w quantized per output column: q · s with s = max |column| / 127. */
function fakeQuantColumns(w: ArrayLike<number>, rows: number, cols: number): number[] {
  const s = Array.from({ length: cols }, (_, j) => Math.max(...Array.from({ length: rows }, (_, i) => Math.abs(w[i * cols + j]!))) / 127);
  return Array.from(w, (v, i) => quantizeValue(v, s[i % cols]!) * s[i % cols]!);
}

describe('quantization sites', () => {
  it('are the matmuls of an activation by a weight input, not the one computing the logits', () => {
    expect(quantSites(mlp()).map((s) => [s.name, s.weight])).toEqual([
      ['m.up', 'm.up.w'],
      ['m.down', 'm.down.w'],
    ]);
  });

  it("are every Linear of std.nn's Transformer blocks (qkv, proj, up, down), not the attention matmuls or the head", () => {
    const { module } = checked();
    const sites = quantSites(lowerForward(module, 'fit', 1, 8));
    expect(sites.map((s) => s.name)).toEqual(['lm.blocks.0.attn.qkv', 'lm.blocks.0.attn.proj', 'lm.blocks.0.ff.up', 'lm.blocks.0.ff.down', 'lm.blocks.1.attn.qkv', 'lm.blocks.1.attn.proj', 'lm.blocks.1.ff.up', 'lm.blocks.1.ff.down']);
  });
});

describe('fake-quantized and int8 forms', () => {
  it('computes the int8 arithmetic written out by hand (reference evaluator)', () => {
    const g = insertFakeQuant(mlp());
    verifyGraph(g, 'fake-quant');
    expect(g.inputs.map((v) => v.inputName).filter((n) => n!.endsWith('input_scale'))).toEqual([activationScaleInput('m.up'), activationScaleInput('m.down')]);
    const prng = new Prng(3);
    const feeds = weightsOf(g, 1, (n) => n.endsWith('input_scale'));
    const x = random([2, 4], prng);
    feeds.set('x', x);
    feeds.set(activationScaleInput('m.up'), makeTensor('f32', [], [0.02]));
    feeds.set(activationScaleInput('m.down'), makeTensor('f32', [], [0.01]));
    const got = evaluateGraph(g, feeds).get('logits')!.data;
    // By hand: the activation rounded to multiples of its scale (saturating), each weight column to its own.
    const w = (n: string): Float64Array => feeds.get(n)!.data;
    const xq = Array.from(x.data, (v) => quantizeValue(v, 0.02) * 0.02);
    const h = matmul(xq, fakeQuantColumns(w('m.up.w'), 4, 3), 2, 4, 3).map((v, i) => Math.max(0, v + w('m.up.b')[i % 3]!));
    const y = matmul(h.map((v) => quantizeValue(v, 0.01) * 0.01), fakeQuantColumns(w('m.down.w'), 3, 4), 2, 3, 4);
    const want = matmul(y, w('m.head.w'), 2, 4, 5);
    want.forEach((v, i) => expect(got[i]!).toBeCloseTo(v, 12));
  });

  it('folds weights to int8 initializers and DequantizeLinear; onnxruntime runs the int8 model as the reference runs the fake-quantized one', async () => {
    const fake = insertFakeQuant(mlp());
    const weights = weightsOf(fake, 5, (n) => n.endsWith('input_scale'));
    const { graph: int8, initializers } = foldWeightQuantization(fake, f32Map(weights));
    verifyGraph(int8, 'int8');
    const up = quantizedWeightInputs('m.up.w');
    expect(initializers.get(up.values)).toBeInstanceOf(Int8Array);
    expect(initializers.get(up.scale)).toBeInstanceOf(Float32Array);
    // The float weights of sites are gone; the head's stays.
    expect(int8.inputs.map((v) => v.inputName).sort()).toEqual(['m.down.input_scale', 'm.down.w.quantized', 'm.down.w.scale', 'm.head.w', 'm.up.b', 'm.up.input_scale', 'm.up.w.quantized', 'm.up.w.scale', 'x']);
    const scales = new Map([
      [activationScaleInput('m.up'), makeTensor('f32', [], [0.03])],
      [activationScaleInput('m.down'), makeTensor('f32', [], [0.005])],
    ]);
    const x = random([2, 4], new Prng(9));
    const reference = evaluateGraph(fake, new Map([...weights, ...scales, ['x', x]])).get('logits')!;
    const model = emitModel(optimize(int8).graph, { initializers: new Map<string, Float32Array | Int8Array>([...f32Map(new Map([...weights, ...scales])), ...initializers]) });
    const ops = onnx.ModelProto.decode(model.bytes).graph!.node!.map((n) => n.opType);
    expect(ops.filter((o) => o === 'QuantizeLinear').length).toBe(2);
    expect(ops.filter((o) => o === 'DequantizeLinear').length).toBe(4);
    const out = (await runOnce(model.bytes, new Map([['x', x]]))).get('logits')!;
    [...reference.data].forEach((v, i) => expect(out.data[i]!).toBeCloseTo(v, 5));
  });

  it("keeps std.nn's Transformer's logits within int8 error, and the model file at under 30% of fp32", async () => {
    const { module } = checked();
    const forward = lowerForward(module, 'fit', 2, 8);
    const fake = insertFakeQuant(forward);
    const weights = weightsOf(forward, 11);
    const tokens = makeTensor('i64', [2, 8], [1, 5, 7, 2, 9, 3, 3, 4, 8, 1, 0, 6, 2, 2, 5, 7]);
    // Activation scales from the float model's own activations on these tokens (minmax).
    const sites = quantSites(forward);
    const probe: Graph = { ...forward, outputs: [...forward.outputs, ...sites.map((s) => ({ name: `act.${s.name}`, value: s.activation }))] };
    const acts = evaluateGraph(probe, new Map([...weights, ['tokens', tokens]]));
    const scales = new Map(sites.map((s) => [activationScaleInput(s.name), makeTensor('f32', [], [Math.max(...[...acts.get(`act.${s.name}`)!.data].map(Math.abs)) / 127])]));
    const floatLogits = acts.get('logits')!.data;
    const fakeLogits = evaluateGraph(fake, new Map([...weights, ...scales, ['tokens', tokens]])).get('logits')!.data;
    const { graph: int8, initializers } = foldWeightQuantization(fake, f32Map(weights));
    const floatModel = emitModel(optimize(forward).graph, { initializers: f32Map(weights) });
    const int8Model = emitModel(optimize(int8).graph, { initializers: new Map<string, Float32Array | Int8Array>([...f32Map(new Map([...weights, ...scales])), ...initializers]) });
    const out = (await runOnce(int8Model.bytes, new Map([['tokens', tokens]]))).get('logits')!.data;
    let worstVsFake = 0;
    let worstVsFloat = 0;
    let range = 0;
    for (let i = 0; i < out.length; i++) {
      worstVsFake = Math.max(worstVsFake, Math.abs(out[i]! - fakeLogits[i]!));
      worstVsFloat = Math.max(worstVsFloat, Math.abs(out[i]! - floatLogits[i]!));
      range = Math.max(range, Math.abs(floatLogits[i]!));
    }
    // onnxruntime's int8 kernels against the float64 reference of the same arithmetic: float32 rounding only.
    expect(worstVsFake).toBeLessThan(1e-3 * range);
    // Against the float model: int8 error, small but not zero.
    expect(worstVsFloat).toBeGreaterThan(0);
    expect(worstVsFloat).toBeLessThan(0.05 * range);
    expect(int8Model.bytes.length).toBeLessThan(0.3 * floatModel.bytes.length);
    if (process.env['PTR_KEEP_QDQ']) writeFileSync(process.env['PTR_KEEP_QDQ'], int8Model.bytes);
  });
});

const RECIPE = `
import std.nn { Transformer }
tokenizer tok = chars("0123456789+-*=\\n", specials: [pad, bos, eos])
model lm = Transformer(vocab: tok.vocab, ctx: 16, dim: 128, layers: 2, heads: 2)
dataset corpus = text("data/corpus.txt", tokenizer: tok, block: 8)
stage fit: train lm on corpus {
  loss = mean(lm(batch.tokens))
  steps = 1
}
`;

function checked(): { module: ReturnType<typeof checkSource>['entryModules'][number] } {
  // A recipe (never written) beside examples/arith's data, which it may read.
  const result = checkSource(RECIPE, join(__dirname, '..', '..', 'examples', 'arith', 'qdq.pt-recipe'));
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return { module: result.entryModules[0]! };
}
