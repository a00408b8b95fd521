/**
 * `prune` stages end to end, through the pipeline driver: a small model
 * pretrained on the arithmetic corpus loses 25% of its feed-forward units
 * (magnitude), is fine-tuned after (recovery) and deployed; another copy loses
 * them by Wanda, a third has half of its weights zeroed (unstructured). Checked:
 * the neuron groups std.nn's blocks have, the shapes in the checkpoint and in
 * later stages' plans, parameter counts, the pruned model's logits against the
 * unpruned model with the removed units zeroed (run by onnxruntime), and the
 * units each method keeps against the scores computed here.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource, type ModuleInfo } from '../../src/check/index.js';
import { lowerForward } from '../../src/ir/lower/inferenceStage.js';
import { declaredTarget, modelGroups } from '../../src/ir/lower/pruning.js';
import { neuronGroups } from '../../src/ir/passes/neuronGroups.js';
import { latestCheckpointDir } from '../../src/runtime/checkpoint.js';
import { runOnce } from '../../src/runtime/ort.js';
import { readSafetensors, toFloat32 } from '../../src/runtime/safetensors.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { planStage, type PipelineResult } from '../../src/stages/driver.js';
import { pretrainedLm, runRecipe } from './harness.js';
import type { PrunePlan } from '../../src/stages/prune.js';
import type { TrainPlan } from '../../src/ir/lower/trainStage.js';
import { emitModel } from '../../targets/onnx/emit.js';

let dir: string;
let module: ModuleInfo;
let result: PipelineResult;

beforeAll(async () => {
  ({ dir, module, result } = await runRecipe('prune', (dir) =>
    `${pretrainedLm(32, 40)}model wide = Transformer(vocab: tok.vocab, ctx: 32, dim: 32, layers: 2, heads: 2)
stage slim: prune lm on corpus after pretrain {
  sparsity = 0.25
  method   = magnitude
}
stage recover: train lm on corpus after slim {
  loss      = next_token(lm(batch.tokens), batch.tokens)
  optimizer = adamw(lr: 1e-3)
  batch     = 8
  steps     = 5
}
stage base: train wide on corpus {
  loss      = next_token(wide(batch.tokens), batch.tokens)
  optimizer = adamw(lr: 3e-3)
  batch     = 8
  steps     = 20
}
stage wanda: prune wide after base {
  sparsity  = 0.5
  method    = wanda
  calibrate = corpus.val[:16]
  batch     = 8
}
stage sparse: prune wide after wanda {
  sparsity   = 0.5
  structured = false
  method     = magnitude
}
deploy lm @ slim to onnx {
  out = "${join(dir, 'slim')}"
}
deploy lm @ recover to onnx {
  out = "${join(dir, 'recover')}"
}
`,
  ));
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tensorsOf = (stage: string): Map<string, ReturnType<typeof readSafetensors>['tensors'] extends Map<string, infer T> ? T : never> =>
  readSafetensors(join(latestCheckpointDir(join(dir, 'run'), stage)!, 'model.safetensors')).tensors;

describe('neuron groups', () => {
  it("are std.nn's MLP (up, bias, gelu, down) and SwiGLU (gate and up joined by a product) units; attention has none", () => {
    const r = checkSource(
      `import std.nn { Transformer, Llama }
tokenizer tok = chars("0123456789", specials: [pad, bos, eos])
model gpt = Transformer(vocab: tok.vocab, ctx: 8, dim: 16, layers: 2, heads: 2)
model llama = Llama(vocab: tok.vocab, ctx: 8, dim: 16, layers: 1, heads: 2, kv_heads: 1, hidden: 24)
dataset d = text("corpus.txt", tokenizer: tok, block: 8)
stage a: train gpt on d { loss = mean(gpt(batch.tokens))
 steps = 1 }
stage b: train llama on d { loss = mean(llama(batch.tokens))
 steps = 1 }
`,
      join(dir, 'groups.pt-recipe'),
    );
    const m = r.entryModules[0]!;
    const gpt = neuronGroups(lowerForward(m, 'a', 1, 4));
    expect(gpt.map((g) => [g.name, g.size, g.members.map((x) => `${x.param}:${x.axis}`)])).toEqual([
      ['gpt.blocks.0.ff', 64, ['gpt.blocks.0.ff.up.w:1', 'gpt.blocks.0.ff.up.b:0', 'gpt.blocks.0.ff.down.w:0']],
      ['gpt.blocks.1.ff', 64, ['gpt.blocks.1.ff.up.w:1', 'gpt.blocks.1.ff.up.b:0', 'gpt.blocks.1.ff.down.w:0']],
    ]);
    const llama = modelGroups(declaredTarget(m, m.stages.get('b')!));
    expect(llama.map((g) => [g.name, g.size, g.members.map((x) => `${x.param}:${x.axis}`).sort()])).toEqual([
      ['llama.blocks.0.ff', 24, ['llama.blocks.0.ff.down.w:0', 'llama.blocks.0.ff.gate.w:1', 'llama.blocks.0.ff.up.w:1']],
    ]);
  });
});

describe('structured pruning', () => {
  it('runs every stage and deploy', () => {
    expect(result.notRun).toEqual([]);
    expect(result.ran.map((r) => r.stage)).toEqual(['pretrain', 'slim', 'recover', 'base', 'wanda', 'sparse']);
  });

  it('leaves 96 of 128 units per layer: smaller tensors, parameter counts in the report, and later stages plan the smaller model', () => {
    const t = tensorsOf('slim');
    expect(t.get('blocks.0.ff.up.w')!.shape).toEqual([32, 96]);
    expect(t.get('blocks.1.ff.up.b')!.shape).toEqual([96]);
    expect(t.get('blocks.1.ff.down.w')!.shape).toEqual([96, 32]);
    expect(t.get('blocks.0.attn.qkv.w')!.shape).toEqual([32, 96]);
    const report = JSON.parse(readFileSync(join(dir, 'run', 'slim', 'pruning.json'), 'utf8')) as { parameters: { before: number; after: number } };
    // Each layer loses 32 units: 32 columns of up.w, 32 biases, 32 rows of down.w.
    expect(report.parameters.before - report.parameters.after).toBe(2 * 32 * (32 + 1 + 32));
    const recover = planStage(module, 'recover', { steps: 1 }) as TrainPlan;
    expect(recover.params.find((p) => p.name === 'blocks.0.ff.down.w')!.shape).toEqual([96, 32]);
    expect(tensorsOf('recover').get('blocks.0.ff.down.w')!.shape).toEqual([96, 32]);
  });

  it('computes what the unpruned model computes with the removed units zeroed (onnxruntime)', async () => {
    const before = tensorsOf('pretrain');
    const after = tensorsOf('slim');
    const report = JSON.parse(readFileSync(join(dir, 'run', 'slim', 'pruning.json'), 'utf8')) as { layers: { name: string; keptUnits: number[] }[] };
    // The magnitude ranking, recomputed: the units with the largest ‖up.w[:, j]‖² + up.b[j]² + ‖down.w[j, :]‖².
    for (const [layer, name] of [0, 1].map((i) => [i, `lm.blocks.${i}.ff`] as const)) {
      const up = toFloat32(before.get(`blocks.${layer}.ff.up.w`)!);
      const b = toFloat32(before.get(`blocks.${layer}.ff.up.b`)!);
      const down = toFloat32(before.get(`blocks.${layer}.ff.down.w`)!);
      const score = Array.from({ length: 128 }, (_, j) => {
        let s = b[j]! * b[j]!;
        for (let i = 0; i < 32; i++) s += up[i * 128 + j]! ** 2 + down[j * 32 + i]! ** 2;
        return s;
      });
      const top = [...score.keys()].sort((p, q) => score[q]! - score[p]!).slice(0, 96).sort((p, q) => p - q);
      expect(report.layers.find((l) => l.name === name)!.keptUnits).toEqual(top);
    }
    const tokens = makeTensor('i64', [1, 32], Array.from({ length: 32 }, (_, i) => (i * 7) % 15));
    const slim = (await runOnce(readFileSync(join(dir, 'slim', 'model.onnx')), new Map([['tokens', tokens]]))).get('logits')!.data;
    // The unpruned model, with the removed units' up columns and biases zeroed (gelu(0) = 0: they contribute nothing).
    // Magnitude pruning reads no data: the plan has no calibration graph.
    expect((planStage(module, 'slim') as PrunePlan).graphs['calibrate']).toBeUndefined();
    const full = lowerForward(module, 'pretrain', 1, 32);
    const weights = new Map<string, Float32Array>();
    for (const v of full.inputs) if (v.inputName !== 'tokens') weights.set(v.inputName!, Float32Array.from(toFloat32(before.get(v.inputName!.slice(3))!)));
    for (const l of report.layers) {
      const kept = new Set(l.keptUnits);
      const up = weights.get(`${l.name}.up.w`)!;
      const b = weights.get(`${l.name}.up.b`)!;
      for (let j = 0; j < 128; j++) {
        if (kept.has(j)) continue;
        b[j] = 0;
        for (let i = 0; i < 32; i++) up[i * 128 + j] = 0;
      }
    }
    const zeroed = (await runOnce(emitModel(full, { initializers: weights }).bytes, new Map([['tokens', tokens]]))).get('logits')!.data;
    let worst = 0;
    for (let i = 0; i < slim.length; i++) worst = Math.max(worst, Math.abs(slim[i]! - zeroed[i]!));
    expect(worst).toBeLessThan(1e-5);
    expect(after.get('blocks.0.ff.up.w')!.shape[1]).toBe(96);
  });

  it('ranks units by Wanda: ‖x_j‖ · Σ|down.w[j, :]|, on the calibration data', () => {
    const report = JSON.parse(readFileSync(join(dir, 'run', 'wanda', 'pruning.json'), 'utf8')) as { method: string; layers: { kept: number; keptUnits: number[] }[] };
    expect(report.method).toBe('wanda');
    expect(report.layers.map((l) => l.kept)).toEqual([64, 64]);
    expect(tensorsOf('wanda').get('blocks.0.ff.up.w')!.shape).toEqual([32, 64]);
  });

  it('zeroes half of the weights of every layer without changing shapes (unstructured), after the Wanda stage', () => {
    const report = JSON.parse(readFileSync(join(dir, 'run', 'sparse', 'pruning.json'), 'utf8')) as { structured: boolean; layers: { name: string; zeros: number }[] };
    expect(report.structured).toBe(false);
    for (const l of report.layers) expect(l.zeros).toBeCloseTo(0.5, 1);
    const t = tensorsOf('sparse');
    expect(t.get('blocks.0.ff.up.w')!.shape).toEqual([32, 64]);
    const w = toFloat32(t.get('blocks.0.attn.qkv.w')!);
    expect(w.filter((v) => v === 0).length).toBe(w.length / 2);
  });
});
