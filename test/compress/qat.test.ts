/**
 * Quantization-aware training (`quantize … { method = qat }`, src/ir/lower/qat.ts)
 * end to end: a small pretrained model trained a few steps with fake-quantized
 * matmuls, then deployed as int8. Checked: the train step's graph (every site
 * fake-quantized, one observed scale per site fed back), the observer's
 * arithmetic on the float64 reference (first batch: max|x|/127; then a moving
 * average with constant 0.01), the scales in the checkpoint, and the int8 ONNX
 * against the float64 reference of the stage's inference graph.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModuleInfo } from '../../src/check/index.js';
import { evaluateGraph, evaluateValues } from '../../src/ir/evaluate.js';
import { OBSERVER_AVERAGING } from '../../src/ir/lower/qat.js';
import type { TrainPlan } from '../../src/ir/lower/trainStage.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import { latestCheckpointDir } from '../../src/runtime/checkpoint.js';
import { runOnce } from '../../src/runtime/ort.js';
import { Prng } from '../../src/runtime/prng.js';
import { readSafetensors, toFloat32 } from '../../src/runtime/safetensors.js';
import { planStage, type PipelineResult } from '../../src/stages/driver.js';
import { pretrainedLm, runRecipe } from './harness.js';

let dir: string;
let module: ModuleInfo;
let result: PipelineResult;

beforeAll(async () => {
  ({ dir, module, result } = await runRecipe(
    'qat',
    (dir) => `${pretrainedLm(32, 40)}stage int8: quantize lm on corpus after pretrain {
  precision = int8
  method    = qat
  loss      = next_token(lm(batch.tokens), batch.tokens)
  optimizer = adamw(lr: 1e-4)
  batch     = 8
  steps     = 6
}
deploy lm @ int8 to onnx {
  precision = int8
  out       = "${join(dir, 'int8')}"
}
`,
  ));
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SITES = [0, 1].flatMap((i) => ['attn.qkv', 'attn.proj', 'ff.up', 'ff.down'].map((l) => `lm.blocks.${i}.${l}`));

describe('quantization-aware training', () => {
  it('trains and deploys', () => {
    expect(result.notRun).toEqual([]);
    expect(result.ran.map((r) => r.stage)).toEqual(['pretrain', 'int8']);
    expect(result.ran[1]!.summary).toMatch(/steps 1–6/);
  });

  it('fake-quantizes every site in the train step and feeds each observed scale back', () => {
    const plan = planStage(module, 'int8', { steps: 1 }) as TrainPlan;
    expect(plan.kind).toBe('quantize');
    const step = plan.graphs['train_step']!;
    const fq = step.nodes.filter((n) => n.op === 'fake_quant' && n.provenance.phase === 'forward');
    expect(fq.length).toBe(2 * SITES.length);
    expect(Object.entries(plan.feedback).filter(([, input]) => input.endsWith('.input_scale')).map(([, i]) => i).sort()).toEqual(SITES.map((s) => `${s}.input_scale`).sort());
    expect(plan.params.filter((p) => p.input.endsWith('.input_scale')).every((p) => !p.trainable && p.init.kind === 'zeros')).toBe(true);
    // The deployable graph: fake-quantized too, reading the scales.
    expect(plan.graphs['inference']!.nodes.filter((n) => n.op === 'fake_quant').length).toBe(2 * SITES.length);
  });

  it("observes each scale as max|x| / 127 on the first batch, then moves it 1% of the way to the batch's", () => {
    const plan = planStage(module, 'int8', { steps: 1 }) as TrainPlan;
    const step = plan.graphs['train_step']!;
    const prng = new Prng(3);
    const feeds = new Map<string, Tensor>();
    for (const v of step.inputs) {
      const n = v.shape.reduce((a, b) => a * b, 1);
      if (v.dtype === 'i64') feeds.set(v.inputName!, makeTensor('i64', v.shape, Array.from({ length: n }, () => (v.shape.length ? prng.int(15) : 1))));
      else feeds.set(v.inputName!, makeTensor('f32', v.shape, Array.from({ length: n }, () => (v.inputName!.startsWith('opt.') || v.inputName!.endsWith('input_scale') ? 0 : 0.2 * prng.normal()))));
    }
    const site = 'lm.blocks.1.ff.down';
    const observed = (values: Map<unknown, Tensor>): number => {
      const node = step.nodes.find((n) => n.op === 'absmax_scale' && !n.attrs['axis'] && n.scope.endsWith('lm.blocks.1.ff.down'))!;
      const x = values.get(node.inputs[0]!)!.data;
      expect(values.get(node.outputs[0]!)!.data[0]).toBeCloseTo(Math.max(...Array.from(x, Math.abs)) / 127, 12);
      return values.get(node.outputs[0]!)!.data[0]!;
    };
    const first = evaluateValues(step, feeds);
    const seen = observed(first);
    const out = (values: Map<unknown, Tensor>): number => values.get(step.outputs.find((o) => o.name === `new.${site}.input_scale`)!.value)!.data[0]!;
    expect(out(first)).toBeCloseTo(seen, 12);
    feeds.set(`${site}.input_scale`, makeTensor('f32', [], [seen / 2]));
    const later = evaluateValues(step, feeds);
    expect(out(later)).toBeCloseTo(seen / 2 + OBSERVER_AVERAGING * (seen - seen / 2), 12);
  });

  it('checkpoints the scales, and the int8 export computes what the fake-quantized inference graph computes', async () => {
    const tensors = readSafetensors(join(latestCheckpointDir(join(dir, 'run'), 'int8')!, 'model.safetensors')).tensors;
    for (const s of SITES) expect(toFloat32(tensors.get(`${s.slice(3)}.input_scale`)!)[0]).toBeGreaterThan(0);
    const plan = planStage(module, 'int8', { steps: 1 }) as TrainPlan;
    const inference = plan.graphs['inference']!;
    const feeds = new Map(inference.inputs.filter((v) => v.inputName !== 'tokens').map((v) => [v.inputName!, makeTensor('f32', v.shape, toFloat32(tensors.get(v.inputName!.slice(3))!))]));
    const tokens = makeTensor('i64', [1, 32], Array.from({ length: 32 }, (_, i) => (i * 5) % 15));
    feeds.set('tokens', tokens);
    const reference = evaluateGraph(inference, feeds).get('logits')!.data;
    const int8 = (await runOnce(readFileSync(join(dir, 'int8', 'model.onnx')), new Map([['tokens', tokens]]))).get('logits')!.data;
    const scale = Math.max(...Array.from(reference, Math.abs));
    for (let i = 0; i < reference.length; i++) expect(Math.abs(int8[i]! - reference[i]!)).toBeLessThan(1e-3 * scale);
  });
});
