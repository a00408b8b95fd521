/**
 * A `quantize` stage end to end (method = ptq), through the pipeline driver:
 * pretrain a small model on the arithmetic corpus, calibrate it (entropy),
 * deploy it as int8 QDQ ONNX and as fp32. Checked: the per-layer report
 * against the checkpoint it leaves, the deployed int8 model run by
 * onnxruntime against the float64 reference of the stage's fake-quantized
 * inference graph, and its logits against the fp32 model's.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModuleInfo } from '../../src/check/index.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { openStageData } from '../../src/runtime/datasets.js';
import { latestCheckpointDir } from '../../src/runtime/checkpoint.js';
import { runOnce } from '../../src/runtime/ort.js';
import { readSafetensors, toFloat32 } from '../../src/runtime/safetensors.js';
import { planStage, type PipelineResult } from '../../src/stages/driver.js';
import { pretrainedLm, runRecipe } from './harness.js';
import type { QuantizationReport, QuantizePlan } from '../../src/stages/quantize.js';
import { onnx } from '../../targets/onnx/proto.js';

let dir: string;
let module: ModuleInfo;
let result: PipelineResult;

beforeAll(async () => {
  ({ dir, module, result } = await runRecipe('ptq', (dir) =>
    `${pretrainedLm(64, 60)}stage int8: quantize lm after pretrain {
  precision   = int8
  method      = ptq
  calibrate   = corpus.val[:32]
  calibration = entropy
  batch       = 8
}
deploy lm @ int8 to onnx {
  precision = int8
  out       = "${join(dir, 'int8')}"
}
deploy lm @ pretrain to onnx {
  out = "${join(dir, 'fp32')}"
}
`,
  ));
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('quantize stage, method = ptq', () => {
  it('runs, and its deploys write models', () => {
    expect(result.notRun).toEqual([]);
    expect(result.ran.map((r) => r.stage)).toEqual(['pretrain', 'int8']);
    expect(result.deployed.length).toBe(2);
  });

  it('reports each layer: a range within the values seen, scale = max(|lo|, |hi|) / 127, and the checkpoint holds those scales', () => {
    const report = JSON.parse(readFileSync(join(dir, 'run', 'int8', 'quantization.json'), 'utf8')) as QuantizationReport;
    expect(report.layers.map((l) => l.name)).toEqual(['lm.blocks.0.attn.qkv', 'lm.blocks.0.attn.proj', 'lm.blocks.0.ff.up', 'lm.blocks.0.ff.down', 'lm.blocks.1.attn.qkv', 'lm.blocks.1.attn.proj', 'lm.blocks.1.ff.up', 'lm.blocks.1.ff.down']);
    expect(report.calibration).toMatchObject({ method: 'entropy', dataset: 'corpus.val', batches: 4, rows: 32 });
    const tensors = readSafetensors(join(latestCheckpointDir(join(dir, 'run'), 'int8')!, 'model.safetensors')).tensors;
    for (const l of report.layers) {
      const a = l.activation;
      expect(a.lo).toBeGreaterThanOrEqual(a.min);
      expect(a.hi).toBeLessThanOrEqual(a.max);
      expect(a.scale).toBeCloseTo(Math.max(Math.abs(a.lo), Math.abs(a.hi)) / 127, 12);
      expect(a.relativeError).toBeGreaterThan(0);
      expect(a.relativeError).toBeLessThan(0.1);
      expect(l.weight.relativeError).toBeLessThan(0.02);
      const stored = toFloat32(tensors.get(`${l.name.slice('lm.'.length)}.input_scale`)!);
      expect(stored[0]).toBeCloseTo(a.scale, 6);
    }
    expect(report.logits.top1Agreement).toBeGreaterThan(0.95);
    expect(report.files.int8).toBeLessThan(0.4 * report.files.fp32);
  });

  it('deploys int8 QDQ ONNX that onnxruntime runs as the float64 reference runs the fake-quantized graph, close to the fp32 model', async () => {
    const bytes = readFileSync(join(dir, 'int8', 'model.onnx'));
    const graph = onnx.ModelProto.decode(bytes).graph!;
    expect(graph.node!.filter((n) => n.opType === 'QuantizeLinear').length).toBe(8);
    expect(graph.initializer!.filter((t) => t.dataType === 3 /* INT8 */ && t.name!.endsWith('.w.quantized')).length).toBe(8);

    const plan = planStage(module, 'int8') as QuantizePlan;
    const weights = readSafetensors(join(latestCheckpointDir(join(dir, 'run'), 'int8')!, 'model.safetensors')).tensors;
    const feeds = new Map(plan.params.map((p) => [p.input, makeTensor('f32', p.shape, toFloat32(weights.get(p.name)!))]));
    const tokens = openStageData(plan.data['calibrate']!.spec, 0).valBatches(1)[0]!['batch.tokens']!;
    const tokenTensor = makeTensor('i64', [1, 32], Array.from(tokens.data as BigInt64Array, Number));
    feeds.set('tokens', tokenTensor);
    const reference = evaluateGraph(plan.graphs['inference']!, feeds).get('logits')!.data;
    const int8 = (await runOnce(bytes, new Map([['tokens', tokenTensor]]))).get('logits')!.data;
    const fp32 = (await runOnce(readFileSync(join(dir, 'fp32', 'model.onnx')), new Map([['tokens', tokenTensor]]))).get('logits')!.data;
    let vsReference = 0;
    let vsFloat = 0;
    let scale = 0;
    for (let i = 0; i < reference.length; i++) {
      vsReference = Math.max(vsReference, Math.abs(int8[i]! - reference[i]!));
      vsFloat = Math.max(vsFloat, Math.abs(int8[i]! - fp32[i]!));
      scale = Math.max(scale, Math.abs(fp32[i]!));
    }
    expect(vsReference).toBeLessThan(1e-3 * scale);
    expect(vsFloat).toBeGreaterThan(vsReference);
    expect(vsFloat).toBeLessThan(0.1 * scale);
  });
});
