/**
 * IR → ONNX emission: deterministic bytes, Identity handling for outputs that
 * cannot take their producer's name, initializers (inline and external data),
 * the declared opset, and the whole train-stage compile (three models and a
 * manifest) on the tiny recipe. Every model emitted here is loaded and run by
 * onnxruntime-node.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkFiles } from '../../../src/check/index.js';
import { GraphBuilder } from '../../../src/ir/builder.js';
import { evaluateGraph } from '../../../src/ir/evaluate.js';
import { IrError, type Graph } from '../../../src/ir/graph.js';
import { lowerTrainStage, type TrainPlan } from '../../../src/ir/lower/trainStage.js';
import { makeTensor, type DType, type Tensor } from '../../../src/ir/tensor.js';
import { runOnce } from '../../../src/runtime/ort.js';
import { compilePlan, MANIFEST_FORMAT, type Compiled } from '../../../targets/onnx/compile.js';
import { emitModel } from '../../../targets/onnx/emit.js';
import { IR_VERSION, onnx, OPSET } from '../../../targets/onnx/proto.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const TINY = join(HERE, '..', '..', 'fixtures', 'train', 'tiny.pt-recipe');

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

interface Decoded {
  readonly irVersion: number;
  readonly opsets: { domain: string; version: number }[];
  readonly producerName: string;
  readonly producerVersion: string;
  readonly docString: string;
  readonly graphName: string;
  readonly inputs: string[];
  readonly outputs: string[];
  readonly nodes: { opType: string; output: string[] }[];
  readonly initializers: { name: string; dims: number[]; dataLocation: number; externalData: Record<string, string>; raw: number }[];
}

/** The fields these tests read, decoded with onnx-proto (independently of how emit.ts built them). */
function decode(bytes: Uint8Array): Decoded {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  return {
    irVersion: Number(m.irVersion),
    opsets: m.opsetImport.map((o) => ({ domain: o.domain ?? '', version: Number(o.version) })),
    producerName: m.producerName,
    producerVersion: m.producerVersion,
    docString: m.docString,
    graphName: g.name ?? '',
    inputs: (g.input ?? []).map((i) => i.name ?? ''),
    outputs: (g.output ?? []).map((o) => o.name ?? ''),
    nodes: (g.node ?? []).map((n) => ({ opType: n.opType ?? '', output: [...(n.output ?? [])] })),
    initializers: (g.initializer ?? []).map((t) => ({
      name: t.name ?? '',
      dims: (t.dims ?? []).map(Number),
      dataLocation: t.dataLocation ?? 0,
      externalData: Object.fromEntries((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? ''])),
      raw: t.rawData?.length ?? 0,
    })),
  };
}
const f32 = (shape: number[], data: number[]): Tensor => makeTensor('f32', shape, data);
const seq = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

function expectClose(actual: Tensor | undefined, expected: Tensor, tol: number, what: string): void {
  expect(actual, what).toBeDefined();
  expect(actual!.dtype, what).toBe(expected.dtype);
  expect(actual!.shape, what).toEqual(expected.shape);
  let worst = 0;
  expected.data.forEach((e, i) => (worst = Math.max(worst, Math.abs(actual!.data[i]! - e) / Math.max(1, Math.abs(e)))));
  expect(worst, `${what}: worst relative difference`).toBeLessThanOrEqual(tol);
}

/** A graph mixing several ops, constants and scopes. */
function mixed(): Graph {
  const b = new GraphBuilder('mixed');
  const x = b.input('x', 'f32', [2, 3]);
  const w = b.input('w', 'f32', [3, 4]);
  const ids = b.input('ids', 'i64', [2]);
  const h = b.scoped('proj', () => b.matmul(x, w));
  const g = b.gather(w, ids);
  const y = b.softmax(b.add(b.tanh(h), b.mul(g, b.scalar(0.5))), 1);
  b.output('y', y);
  b.output('s', b.reduceSum(b.layerNorm(h, b.constant(f32([4], [1, 2, 3, 4])), b.constant(f32([4], [0, 0, 1, 1])), 1e-5), [0, 1]));
  return b.build();
}

const mixedFeeds = (): Map<string, Tensor> =>
  new Map([
    ['x', f32([2, 3], [0.1, -0.4, 0.7, 1.2, 0.3, -0.9])],
    ['w', f32([3, 4], seq(12, (i) => Math.sin(i + 1)))],
    ['ids', makeTensor('i64', [2], [2, 0])],
  ]);

// ------------------------------------------------------------------ (a) determinism

describe('emitModel: determinism', () => {
  it('the same graph emitted twice, or built twice, gives byte-identical models', async () => {
    const g = mixed();
    const a = emitModel(g).bytes;
    const b = emitModel(g).bytes;
    const c = emitModel(mixed()).bytes;
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(c).equals(Buffer.from(a))).toBe(true);
    // …and the bytes depend on the graph: a different constant gives different bytes.
    const other = new GraphBuilder('mixed');
    other.output('y', other.add(other.input('x', 'f32', [2, 3]), other.scalar(1)));
    expect(Buffer.from(emitModel(other.build()).bytes).equals(Buffer.from(a))).toBe(false);
    // The model runs and agrees with the reference evaluator.
    const feeds = mixedFeeds();
    const out = await runOnce(a, feeds);
    const ref = evaluateGraph(g, feeds);
    for (const [k, t] of ref) expectClose(out.get(k), t, 1e-5, k);
  });
});

// ------------------------------------------------------------------ (b) Identity handling

describe('emitModel: outputs that need an Identity', () => {
  it('an output that is a graph input, a value output under two names, and an output also read by another node', async () => {
    const b = new GraphBuilder('ident');
    const x = b.input('x', 'f32', [3]);
    const ids = b.input('ids', 'i64', [2]);
    const e = b.exp(x);
    b.output('x_out', x); // an input passed through
    b.output('e1', e); // one value, two names
    b.output('e2', e);
    const n = b.neg(x);
    b.output('n', n); // a normal output…
    b.output('m', b.mul(n, b.scalar(2))); // …also read by another node
    b.output('ids_a', ids); // an i64 input, twice
    b.output('ids_b', ids);
    const g = b.build();
    const model = emitModel(g);
    const proto = decode(model.bytes);
    expect(proto.outputs).toEqual(['x_out', 'e1', 'e2', 'n', 'm', 'ids_a', 'ids_b']);
    const identities = proto.nodes.filter((nd) => nd.opType === 'Identity');
    expect(identities.map((nd) => nd.output[0]).sort()).toEqual(['e1', 'e2', 'ids_a', 'ids_b', 'x_out']);
    // 'n' took its producer's name: no copy.
    expect(proto.nodes.find((nd) => nd.opType === 'Neg')!.output).toEqual(['n']);
    const feeds = new Map([
      ['x', f32([3], [0, 1, -2])],
      ['ids', makeTensor('i64', [2], [7, -3])],
    ]);
    const out = await runOnce(model.bytes, feeds);
    expect(Array.from(out.get('x_out')!.data)).toEqual([0, 1, -2]);
    expectClose(out.get('e1'), f32([3], [1, Math.E, Math.exp(-2)]), 1e-6, 'e1');
    expectClose(out.get('e2'), f32([3], [1, Math.E, Math.exp(-2)]), 1e-6, 'e2');
    expect(Array.from(out.get('n')!.data)).toEqual([-0, -1, 2]);
    expect(Array.from(out.get('m')!.data)).toEqual([-0, -2, 4]);
    for (const k of ['ids_a', 'ids_b']) {
      expect(out.get(k)!.dtype).toBe('i64');
      expect(Array.from(out.get(k)!.data)).toEqual([7, -3]);
    }
  });
});

// ------------------------------------------------------------------ (c), (d) initializers

/** An inference-style graph: weights w, bias and row ids to become initializers, x fed at run time. */
function inferenceGraph(rows: number, cols: number): Graph {
  const b = new GraphBuilder('infer');
  const x = b.input('x', 'f32', [2, rows]);
  const w = b.input('w', 'f32', [rows, cols]);
  const bias = b.input('bias', 'f32', [cols]);
  const ids = b.input('ids', 'i64', [3]);
  b.output('y', b.add(b.matmul(x, w), bias));
  b.output('rows', b.gather(w, ids));
  return b.build();
}

function inferenceData(rows: number, cols: number) {
  const w = Float32Array.from(seq(rows * cols, (i) => Math.cos(0.37 * i)));
  const bias = Float32Array.from(seq(cols, (i) => 0.1 * i - 0.5));
  const ids = BigInt64Array.from([BigInt(rows - 1), 0n, 1n]);
  const x = f32([2, rows], seq(2 * rows, (i) => Math.sin(0.11 * i)));
  const init = new Map<string, Float32Array | BigInt64Array>([
    ['w', w],
    ['bias', bias],
    ['ids', ids],
  ]);
  const allFeeds = new Map<string, Tensor>([
    ['x', x],
    ['w', f32([rows, cols], Array.from(w))],
    ['bias', f32([cols], Array.from(bias))],
    ['ids', makeTensor('i64', [3], Array.from(ids, Number))],
  ]);
  return { init, x, allFeeds };
}

describe('emitModel: initializers', () => {
  it('graph inputs given as initializers are stored in the model; only the rest are fed, with the same results', async () => {
    const g = inferenceGraph(3, 4);
    const { init, x, allFeeds } = inferenceData(3, 4);
    const withInit = emitModel(g, { initializers: init });
    expect(withInit.externalData).toBeNull(); // far below the default threshold
    const proto = decode(withInit.bytes);
    expect(proto.inputs).toEqual(['x']);
    const inits = proto.initializers.filter((t) => init.has(t.name));
    expect(inits.map((t) => t.name)).toEqual(['w', 'bias', 'ids']);
    expect(inits.map((t) => t.dims)).toEqual([[3, 4], [4], [3]]);
    expect(inits.map((t) => t.raw)).toEqual([48, 16, 24]);
    const fedOnlyX = await runOnce(withInit.bytes, new Map([['x', x]]));
    const fedAll = await runOnce(emitModel(g).bytes, allFeeds);
    const ref = evaluateGraph(g, allFeeds);
    for (const k of ['y', 'rows']) {
      expect(Array.from(fedOnlyX.get(k)!.data), k).toEqual(Array.from(fedAll.get(k)!.data));
      expectClose(fedOnlyX.get(k), ref.get(k)!, 1e-6, k);
    }
    // Row ids [2, 0, 1] of w, exactly (float32 values of the initializer).
    expect(Array.from(fedOnlyX.get('rows')!.data)).toEqual([...init.get('w')!.slice(8, 12), ...init.get('w')!.slice(0, 8)].map(Number));
  });

  it('rejects an initializer whose length does not match the input shape', () => {
    const g = inferenceGraph(3, 4);
    expect(() => emitModel(g, { initializers: new Map([['w', new Float32Array(11)]]) })).toThrow(IrError);
  });

  it('external data (threshold 0): model + data file side by side load from a path, give the same outputs, and the model file no longer holds the weights', async () => {
    const rows = 64;
    const cols = 32;
    const g = inferenceGraph(rows, cols);
    const { init, x } = inferenceData(rows, cols);
    const inline = emitModel(g, { initializers: init });
    const external = emitModel(g, { initializers: init, externalDataThreshold: 0, externalDataFile: 'infer.weights' });
    expect(inline.externalData).toBeNull();
    expect(external.externalData).not.toBeNull();
    const weightBytes = rows * cols * 4 + cols * 4 + 3 * 8;
    // w at 0, bias at the next multiple of 64 after it, ids likewise.
    const biasAt = Math.ceil((rows * cols * 4) / 64) * 64;
    const idsAt = Math.ceil((biasAt + cols * 4) / 64) * 64;
    expect(external.externalData!.length).toBe(idsAt + 3 * 8);
    expect(inline.bytes.length - external.bytes.length).toBeGreaterThanOrEqual(weightBytes - 512);
    expect(external.bytes.length).toBeLessThan(weightBytes / 2);
    const proto = decode(external.bytes);
    const locations = proto.initializers.filter((t) => init.has(t.name)).map((t) => ({ name: t.name, loc: t.dataLocation, ext: t.externalData, raw: t.raw }));
    expect(locations).toEqual([
      { name: 'w', loc: onnx.TensorProto.DataLocation.EXTERNAL, ext: { location: 'infer.weights', offset: '0', length: String(rows * cols * 4) }, raw: 0 },
      { name: 'bias', loc: onnx.TensorProto.DataLocation.EXTERNAL, ext: { location: 'infer.weights', offset: String(biasAt), length: String(cols * 4) }, raw: 0 },
      { name: 'ids', loc: onnx.TensorProto.DataLocation.EXTERNAL, ext: { location: 'infer.weights', offset: String(idsAt), length: '24' }, raw: 0 },
    ]);

    const dir = mkdtempSync(join(tmpdir(), 'ptr-emit-'));
    tmpDirs.push(dir);
    writeFileSync(join(dir, 'infer.onnx'), external.bytes);
    writeFileSync(join(dir, 'infer.weights'), external.externalData!);
    writeFileSync(join(dir, 'inline.onnx'), inline.bytes);
    expect(statSync(join(dir, 'infer.onnx')).size).toBeLessThan(statSync(join(dir, 'inline.onnx')).size - weightBytes + 512);
    // The weights' bytes are not in the model file (a run of w's float32 bytes would be).
    const wBytes = Buffer.from(init.get('w')!.buffer, 0, 256);
    expect(readFileSync(join(dir, 'infer.onnx')).includes(wBytes)).toBe(false);
    expect(readFileSync(join(dir, 'inline.onnx')).includes(wBytes)).toBe(true);

    const feeds = new Map([['x', x]]);
    const fromPath = await runOnce(join(dir, 'infer.onnx'), feeds);
    const fromInline = await runOnce(join(dir, 'inline.onnx'), feeds);
    for (const k of ['y', 'rows']) expect(Array.from(fromPath.get(k)!.data), k).toEqual(Array.from(fromInline.get(k)!.data));
    const ref = evaluateGraph(g, inferenceData(rows, cols).allFeeds);
    expectClose(fromPath.get('y'), ref.get('y')!, 1e-5, 'y');
  });
});

// ------------------------------------------------------------------ (e) opset and IR version

describe('emitModel: model header', () => {
  it('declares opset 17 of the default domain and IR version 8', () => {
    const proto = decode(emitModel(mixed(), { producerVersion: '9.9.9', docString: 'hello' }).bytes);
    expect(OPSET).toBe(17);
    expect(IR_VERSION).toBe(8);
    expect(proto.irVersion).toBe(8);
    expect(proto.opsets).toEqual([{ domain: '', version: 17 }]);
    expect(proto.producerName).toBe('pt-recipe');
    expect(proto.producerVersion).toBe('9.9.9');
    expect(proto.docString).toBe('hello');
    expect(proto.graphName).toBe('mixed');
  });
});

// ------------------------------------------------------------------ (f) compilePlan on the tiny recipe

function tinyPlan(): TrainPlan {
  const result = checkFiles([TINY]);
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return lowerTrainStage(result.entryModules[0]!, null);
}

/** Ones for every input (parameters, token ids, step, seed), zeros for optimizer state. */
function onesFeeds(entry: { inputs: readonly { name: string; dtype: string; shape: readonly number[] }[] }): Map<string, Tensor> {
  return new Map(
    entry.inputs.map((i) => {
      const n = i.shape.reduce((a, d) => a * d, 1);
      const fill = i.name.startsWith('opt.') ? 0 : 1;
      return [i.name, makeTensor(i.dtype as DType, i.shape, new Array<number>(n).fill(fill))];
    }),
  );
}

describe('compilePlan on test/fixtures/train/tiny.pt-recipe', () => {
  let compiled: Compiled;
  let plan: TrainPlan;

  it('produces train_step, eval, inference, prefill and decode models, opset 17, that load and run on feeds of the manifest shapes', async () => {
    plan = tinyPlan();
    compiled = compilePlan(plan, 'tiny.pt-recipe');
    const m = compiled.manifest;
    expect(m.format).toBe(MANIFEST_FORMAT);
    expect(compiled.files.map((f) => f.name)).toEqual(['train_step.onnx', 'eval.onnx', 'inference.onnx', 'prefill.onnx', 'decode.onnx', 'train_loop.onnx']);
    // The Loop model declares its inputs and outputs as the manifest says; it is run in loop.test.ts.
    const loopProto = decode(compiled.files.find((f) => f.name === 'train_loop.onnx')!.bytes);
    expect(loopProto.inputs).toEqual(m.graphs['train_loop']!.inputs.map((i) => i.name));
    expect(loopProto.outputs).toEqual(m.graphs['train_loop']!.outputs.map((o) => o.name));
    // Two steps of it, on the same all-ones feeds: the first loss is ln(vocab) as for train_step below.
    const twoSteps = { inputs: m.graphs['train_loop']!.inputs.map((i) => ({ ...i, shape: i.shape.map((d) => (d === -1 ? 2 : d)) })) };
    const loopFeeds = onesFeeds(twoSteps);
    loopFeeds.set('steps', makeTensor('i64', [], [2]));
    for (const [name, t] of loopFeeds) if (name.startsWith('init.opt.')) loopFeeds.set(name, makeTensor('f32', t.shape));
    const looped = await runOnce(compiled.files.find((f) => f.name === 'train_loop.onnx')!.bytes, loopFeeds);
    const vocabSize = m.graphs['inference']!.outputs[0]!.shape.at(-1)!;
    expect(looped.get('all.loss')!.shape).toEqual([2]);
    expect(looped.get('all.loss')!.data[0]).toBeCloseTo(Math.log(vocabSize), 4);
    const entries = { 'train_step.onnx': m.graphs['train_step']!, 'eval.onnx': m.graphs['eval']!, 'inference.onnx': m.graphs['inference']! };
    const vocab = m.graphs['inference']!.outputs.find((o) => o.name === 'logits')!.shape.at(-1)!;
    expect(vocab).toBeGreaterThan(2);
    // prefill and decode (dynamic sizes, -1 in the manifest) are run below.
    for (const file of compiled.files.filter((f) => f.name in entries)) {
      const entry = entries[file.name as keyof typeof entries];
      expect(entry.file).toBe(file.name);
      const proto = decode(file.bytes);
      expect(proto.irVersion).toBe(8);
      expect(proto.opsets).toEqual([{ domain: '', version: 17 }]);
      expect(proto.inputs).toEqual(entry.inputs.map((i) => i.name));
      expect(proto.outputs).toEqual(entry.outputs.map((o) => o.name));
      expect(entry.nodes.optimized).toBeLessThanOrEqual(entry.nodes.ir);
      expect(entry.nodes.onnx).toBe(proto.nodes.length);
      const out = await runOnce(file.bytes, onesFeeds(entry));
      for (const o of entry.outputs) {
        const t = out.get(o.name);
        expect(t, `${file.name}: ${o.name}`).toBeDefined();
        expect(t!.dtype).toBe(o.dtype);
        expect(t!.shape, `${file.name}: ${o.name}`).toEqual(o.shape);
        expect(t!.data.every(Number.isFinite), `${file.name}: ${o.name} finite`).toBe(true);
      }
      // With every weight 1, every token looks the same to the model: uniform logits, loss = ln(vocab).
      if (file.name === 'inference.onnx') {
        const logits = out.get('logits')!.data;
        expect(Math.max(...logits) - Math.min(...logits)).toBeLessThan(1e-3);
      } else {
        expect(out.get('loss')!.data[0]).toBeCloseTo(Math.log(vocab), 4);
      }
      if (file.name === 'train_step.onnx') {
        // Step 1 of a 3-step warmup: lr = 3e-3 · 1/3.
        expect(out.get('lr')!.data[0]).toBeCloseTo(1e-3, 7);
        expect(out.get('grad_norm')!.data[0]).toBeGreaterThanOrEqual(0);
      }
    }
  });

  it('names the generation graphs and their cache in the manifest; prefill and decode run at sizes the manifest leaves open (-1)', async () => {
    const m = compiled.manifest;
    const generation = m.generation!;
    expect(generation).toMatchObject({ prefill: 'prefill', decode: 'decode', tokens: 'tokens', positions: 'positions', attentionMask: 'attention_mask', logits: 'logits', maxPositions: 16 });
    expect(generation.cache.map((c) => [c.block, c.pastKey, c.presentValue, c.heads, c.headDim])).toEqual([
      ['lm.blocks.0.attn', 'past.lm.blocks.0.attn.key', 'present.lm.blocks.0.attn.value', 2, 8],
      ['lm.blocks.1.attn', 'past.lm.blocks.1.attn.key', 'present.lm.blocks.1.attn.value', 2, 8],
    ]);
    expect('dims' in m).toBe(false);
    const shapeOf = (name: string, graph: string) => m.graphs[graph]!.inputs.find((i) => i.name === name)?.shape ?? m.graphs[graph]!.outputs.find((o) => o.name === name)!.shape;
    expect(shapeOf('tokens', 'prefill')).toEqual([-1, -1]);
    expect(shapeOf('attention_mask', 'decode')).toEqual([-1, -1]);
    expect(shapeOf('past.lm.blocks.0.attn.key', 'decode')).toEqual([-1, 2, -1, 8]);
    expect(shapeOf('logits', 'decode')).toEqual([-1, 1, 19]);
    // Batch 2, prompt 3, then one token after 5 cache slots; weights all 1, as above.
    const [B, S, C] = [2, 3, 5];
    const sized = (graph: string, sizes: Record<string, number[]>) =>
      new Map(
        m.graphs[graph]!.inputs.map((i) => {
          const shape = sizes[i.name] ?? (i.name.startsWith('past.') ? [B, 2, C, 8] : i.shape);
          return [i.name, makeTensor(i.dtype as DType, shape, new Array<number>(shape.reduce((a, d) => a * d, 1)).fill(i.dtype === 'i64' ? 0 : 1))];
        }),
      );
    const prefill = await runOnce(compiled.files.find((f) => f.name === 'prefill.onnx')!.bytes, sized('prefill', { tokens: [B, S], positions: [B, S], attention_mask: [B, S] }));
    expect(prefill.get('logits')!.shape).toEqual([B, S, 19]);
    expect(prefill.get('present.lm.blocks.1.attn.key')!.shape).toEqual([B, 2, S, 8]);
    const decode = await runOnce(compiled.files.find((f) => f.name === 'decode.onnx')!.bytes, sized('decode', { tokens: [B, 1], positions: [B, 1], attention_mask: [B, C + 1] }));
    expect(decode.get('logits')!.shape).toEqual([B, 1, 19]);
    expect(decode.get('present.lm.blocks.0.attn.value')!.shape).toEqual([B, 2, 1, 8]);
    expect([...decode.get('logits')!.data].every(Number.isFinite)).toBe(true);
  });

  it("pairs each 'new.X' output with input X of the same dtype and shape in the feedback map", () => {
    const m = compiled.manifest;
    const ins = new Map(m.graphs['train_step']!.inputs.map((i) => [i.name, i]));
    const outs = new Map(m.graphs['train_step']!.outputs.map((o) => [o.name, o]));
    const pairs = Object.entries(m.feedback);
    // Every trainable parameter and each of its two AdamW slots comes back.
    const trainable = m.params.filter((p) => p.trainable);
    expect(trainable.length).toBeGreaterThan(0);
    expect(pairs.length).toBe(trainable.length * 3);
    for (const [out, input] of pairs) {
      expect(out).toBe(`new.${input}`);
      expect(outs.get(out), out).toBeDefined();
      expect(ins.get(input), input).toBeDefined();
      expect(outs.get(out)!.shape, out).toEqual(ins.get(input)!.shape);
      expect(outs.get(out)!.dtype, out).toBe(ins.get(input)!.dtype);
    }
    // …and every 'new.' output is in the map.
    expect([...outs.keys()].filter((k) => k.startsWith('new.')).sort()).toEqual(Object.keys(m.feedback).sort());
    for (const p of trainable) expect(m.feedback[`new.${p.input}`]).toBe(p.input);
  });

  it('compiling twice (check, lower, compile from scratch) gives byte-identical files and an identical manifest', () => {
    const again = compilePlan(tinyPlan(), 'tiny.pt-recipe');
    expect(again.files.map((f) => f.name)).toEqual(compiled.files.map((f) => f.name));
    again.files.forEach((f, i) => expect(Buffer.from(f.bytes).equals(Buffer.from(compiled.files[i]!.bytes)), f.name).toBe(true));
    expect(JSON.stringify(again.manifest)).toBe(JSON.stringify(compiled.manifest));
    expect(again.passes).toEqual(compiled.passes);
    // The same plan compiled twice, too.
    const samePlan = compilePlan(plan, 'tiny.pt-recipe');
    samePlan.files.forEach((f, i) => expect(Buffer.from(f.bytes).equals(Buffer.from(compiled.files[i]!.bytes)), f.name).toBe(true));
  });
});
