/**
 * The CUDA kernel check (src/runtime/cudaCheck.ts): the committed kernel table
 * is what the generator makes of onnxruntime's OperatorKernels.md excerpt;
 * every graph the examples emit runs on the CUDA provider from end to end once
 * legalized (and before that, only SoftmaxCrossEntropyLoss would fall back);
 * nodes without a kernel for their op, opset or types are named; and the
 * rewritten cross-entropy computes what onnxruntime's SoftmaxCrossEntropyLoss
 * computes, alone and inside a whole train step (run on the CPU here).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../src/check/index.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { lowerTrainStage } from '../../src/ir/lower/trainStage.js';
import { optimize } from '../../src/ir/passes/index.js';
import { cudaFallbacks, formatFallbacks, legalizeForCuda } from '../../src/runtime/cudaCheck.js';
import { CUDA_KERNEL_SOURCE } from '../../src/runtime/cudaKernels.js';
import { parseOperatorKernels, renderKernelTable } from '../../src/runtime/cudaKernelsGen.js';
import { initialParams } from '../../src/runtime/init.js';
import { createSession, ort, type OrtTensor } from '../../src/runtime/ort.js';
import { planStage } from '../../src/stages/driver.js';
import { compilePlan } from '../../targets/onnx/compile.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { onnx } from '../../targets/onnx/proto.js';

const ROOT = join(__dirname, '..', '..');
const EXCERPT = join(ROOT, 'test', 'fixtures', 'ort-cuda', 'OperatorKernels-cuda-excerpt.md');

it('the committed kernel table is the generator’s output for the OperatorKernels.md excerpt', () => {
  const kernels = parseOperatorKernels(readFileSync(EXCERPT, 'utf8'));
  expect(kernels.has('SoftmaxCrossEntropyLoss')).toBe(false);
  expect(kernels.get('Pad')!.ranges.find((r) => r.since === 13)).toEqual({ since: 13, until: 17, types: { T: ['bool', 'double', 'float', 'float16'] } });
  expect(kernels.get('Expand')!.inputs).toEqual([
    { name: 'input', type: { variable: 'T' } },
    { name: 'shape', type: { fixed: 'int64' } },
  ]);
  const rendered = renderKernelTable(kernels, CUDA_KERNEL_SOURCE);
  expect(rendered).toBe(readFileSync(join(ROOT, 'src', 'runtime', 'cudaKernels.ts'), 'utf8'));
});

it('a malformed row is an error naming its line', () => {
  const md = '## Operators implemented by CUDAExecutionProvider\n|**Operator Domain:** *ai.onnx*||||\n|Abs|*in* X:**T**<br> *out* Y:**T**|thirteen|**T** = tensor(float)|\n';
  expect(() => parseOperatorKernels(md)).toThrow("line 3: cannot read the opset version 'thirteen'");
});

/** Every model file of every stage the examples can compile (stage kinds that do not run yet are left out). */
function exampleModels(): { label: string; bytes: Uint8Array }[] {
  const models: { label: string; bytes: Uint8Array }[] = [];
  for (const file of ['quickstart', 'distill', 'constitutional', 'arith/pipeline', 'lora']) {
    const path = join(ROOT, 'examples', `${file}.pt-recipe`);
    const module = checkFiles([path]).entryModules[0]!;
    for (const [stage, decl] of module.stages) {
      if (decl.stageKind.name !== 'train') continue;
      const compiled = compilePlan(planStage(module, stage, { steps: 10 }), path);
      for (const f of compiled.files) models.push({ label: `${file} ${stage} ${f.name}`, bytes: f.bytes });
    }
  }
  return models;
}

describe('every graph the examples emit', () => {
  const models = exampleModels();

  it('covers training, eval, inference and K-step loop graphs', () => {
    const kinds = new Set(models.map((m) => m.label.split(' ').pop()));
    expect([...kinds].sort()).toEqual(['decode.onnx', 'eval.onnx', 'inference.onnx', 'prefill.onnx', 'train_loop.onnx', 'train_step.onnx']);
    expect(models.length).toBeGreaterThanOrEqual(40);
  });

  it('falls back to the CPU only at SoftmaxCrossEntropyLoss before legalization, and nowhere after it', () => {
    for (const m of models) {
      const before = cudaFallbacks(m.bytes);
      expect(before.every((f) => f.opType === 'SoftmaxCrossEntropyLoss' && f.reason.includes('no SoftmaxCrossEntropyLoss kernel')), `${m.label}\n${formatFallbacks(before)}`).toBe(true);
      // (Generation graphs' Shape nodes have a CUDA kernel, whose output onnxruntime keeps in host memory by design.)
      const after = cudaFallbacks(legalizeForCuda(m.bytes));
      expect(after, `${m.label}\n${formatFallbacks(after)}`).toEqual([]);
    }
    // The pretraining stages' next-token loss is where the rewrite is needed, Loop bodies included.
    const quick = models.filter((m) => m.label.startsWith('quickstart'));
    expect(quick.map((m) => `${m.label}: ${cudaFallbacks(m.bytes).length}`)).toEqual([
      'quickstart pretrain train_step.onnx: 1',
      'quickstart pretrain eval.onnx: 1',
      'quickstart pretrain inference.onnx: 0',
      'quickstart pretrain prefill.onnx: 0',
      'quickstart pretrain decode.onnx: 0',
      'quickstart pretrain train_loop.onnx: 1',
    ]);
    expect(cudaFallbacks(quick[5]!.bytes)[0]!.graph).toBe('train_loop/train_step_body');
  });
});

it('ptr compile --device cuda writes graphs that run on CUDA end to end, and they still load and run', async () => {
  const out = mkdtempSync(join(tmpdir(), 'ptr-cuda-'));
  try {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'ptr.js'), 'compile', join(ROOT, 'examples', 'quickstart.pt-recipe'), '-o', out, '--device', 'cuda'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('cuda: rewrote SoftmaxCrossEntropyLoss (no CUDA kernel) as LogSoftmax + GatherElements in train_step.onnx, eval.onnx, train_loop.onnx\n');
    expect(r.stdout).toMatch(/cuda: every node of train_step\.onnx, eval\.onnx, inference\.onnx, .*train_loop\.onnx has a CUDA kernel\n/);
    const step = readFileSync(join(out, 'train_step.onnx'));
    expect(cudaFallbacks(step)).toEqual([]);
    expect(onnx.ModelProto.decode(step).graph!.node!.some((n) => n.opType === 'SoftmaxCrossEntropyLoss')).toBe(false);
    // onnxruntime accepts the rewritten model (type and shape inference of every node).
    await (await createSession(join(out, 'train_step.onnx'))).release();
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

describe('nodes without a CUDA kernel are named', () => {
  /** A model of the given nodes over typed inputs (opset 17, as pt-recipe emits). */
  function model(inputs: Record<string, number>, nodes: InstanceType<typeof onnx.NodeProto>[], output: string): Uint8Array {
    const info = (name: string, elemType: number) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType, shape: { dim: [{ dimValue: 4 }] } } } });
    const graph = onnx.GraphProto.create({ name: 'g', node: nodes, input: Object.entries(inputs).map(([n, t]) => info(n, t)), output: [info(output, 1)] });
    return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph })).finish();
  }
  const node = (opType: string, input: string[], output: string, docString = '') => onnx.NodeProto.create({ opType, input, output: [output], name: `n_${output}`, docString });
  const INT64 = 7;
  const FLOAT = 1;
  const UINT8 = 2;

  it('an op the CUDA provider has no kernel for, with where it comes from', () => {
    const fb = cudaFallbacks(model({ x: FLOAT, y: INT64 }, [node('SoftmaxCrossEntropyLoss', ['x', 'y'], 'loss', 'r.pt-recipe:9:15 forward')], 'loss'));
    expect(formatFallbacks(fb)).toBe('g: node n_loss (SoftmaxCrossEntropyLoss, r.pt-recipe:9:15 forward): the CUDA provider has no SoftmaxCrossEntropyLoss kernel (onnxruntime runs it on the CPU)');
  });

  it('a type the kernel does not take, on an input or carried through to the next node', () => {
    const fb = cudaFallbacks(model({ a: INT64, pads: INT64, b: UINT8 }, [node('Pad', ['a', 'pads'], 'p'), node('Neg', ['b'], 'n'), node('Add', ['a', 'b'], 's')], 's'));
    expect(fb.map((f) => `${f.opType}: ${f.reason}`)).toEqual([
      'Pad: input 0 (data) is int64: the CUDA kernel takes bool, double, float, float16',
      'Neg: input 0 (X) is uint8: the CUDA kernel takes bfloat16, double, float, float16, int16, int32, int64, int8',
      'Add: input 1 (B) is uint8: the other T operands are int64',
    ]);
  });

  it('a fixed-type input and an opset outside every kernel range', () => {
    const fb = cudaFallbacks(model({ a: FLOAT, shape: FLOAT }, [node('Expand', ['a', 'shape'], 'e')], 'e'));
    expect(fb.map((f) => f.reason)).toEqual(['input 1 (shape) is float: the kernel takes int64']);
    const old = onnx.ModelProto.decode(model({ a: FLOAT }, [node('Range', ['a', 'a', 'a'], 'r')], 'r'));
    old.opsetImport = [{ domain: '', version: 9 }];
    expect(cudaFallbacks(old).map((f) => f.reason)).toEqual(['the CUDA provider has Range kernels, but none for opset 9']);
  });
});

describe('cross-entropy without SoftmaxCrossEntropyLoss', () => {
  it('computes what onnxruntime’s SoftmaxCrossEntropyLoss computes, ignored labels and all-ignored (NaN) included', async () => {
    const b = new GraphBuilder('ce');
    b.output('loss', b.crossEntropy(b.input('logits', 'f32', [6, 5]), b.input('targets', 'i64', [6]), -100));
    const original = emitModel(b.build()).bytes;
    const legal = legalizeForCuda(original);
    expect(cudaFallbacks(original).length).toBe(1);
    expect(cudaFallbacks(legal)).toEqual([]);
    const [ref, cuda] = [await createSession(original), await createSession(legal)];
    const logits = new ort.Tensor('float32', Float32Array.from({ length: 30 }, (_, i) => Math.sin(i * 1.7) * 3), [6, 5]);
    for (const labels of [[0, 4, 2, 1, 3, 2], [0, -100, 2, -100, 3, 4], [-100, -100, -100, -100, -100, -100]]) {
      const feeds = { logits, targets: new ort.Tensor('int64', BigInt64Array.from(labels, BigInt), [6]) };
      const want = ((await ref.run(feeds))['loss']!.data as Float32Array)[0]!;
      const got = ((await cuda.run(feeds))['loss']!.data as Float32Array)[0]!;
      if (Number.isNaN(want)) expect(got).toBeNaN();
      else expect(Math.abs(got - want)).toBeLessThan(1e-6 * Math.max(1, Math.abs(want)));
    }
    await ref.release();
    await cuda.release();
  });

  it('a whole legalized train step gives the loss, gradient norm and update of the original', async () => {
    const module = checkFiles([join(ROOT, 'test', 'fixtures', 'train', 'llama.pt-recipe')]).entryModules[0]!;
    const plan = lowerTrainStage(module, null);
    const original = emitModel(optimize(plan.graphs['train_step']!).graph).bytes;
    const legal = legalizeForCuda(original);
    expect(cudaFallbacks(legal)).toEqual([]);
    const feeds: Record<string, OrtTensor> = {};
    for (const [name, data] of initialParams(plan.params, 5)) feeds[name] = new ort.Tensor('float32', data, [...plan.params.find((p) => p.input === name)!.shape]);
    for (const s of plan.state) feeds[s.input] = new ort.Tensor('float32', new Float32Array(s.shape.reduce((a, b) => a * b, 1)), [...s.shape]);
    const field = plan.data['train']!.fields[0]!;
    feeds[field.input] = new ort.Tensor('int64', BigInt64Array.from({ length: field.shape.reduce((a, b) => a * b, 1) }, (_, i) => BigInt((i * 7) % 17)), [...field.shape]);
    feeds['step'] = new ort.Tensor('int64', BigInt64Array.of(1n), []);
    feeds['seed'] = new ort.Tensor('int64', BigInt64Array.of(3n), []);
    const [a, b] = [await createSession(original), await createSession(legal)];
    const [want, got] = [await a.run(feeds), await b.run(feeds)];
    for (const name of ['loss', 'grad_norm']) {
      const [w, g] = [(want[name]!.data as Float32Array)[0]!, (got[name]!.data as Float32Array)[0]!];
      expect(Math.abs(g - w), name).toBeLessThan(1e-5 * Math.abs(w));
    }
    for (const out of Object.keys(plan.feedback)) {
      const [w, g] = [want[out]!.data as Float32Array, got[out]!.data as Float32Array];
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i]! - g[i]!));
      expect(worst, out).toBeLessThan(1e-5);
    }
    await a.release();
    await b.release();
  });
});
