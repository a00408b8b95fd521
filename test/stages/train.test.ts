/**
 * Train stages through the stage architecture: the data schema is the one
 * source of `batch.X` (checker, lowering and runtime agree), gradient
 * accumulation gives exactly the full-batch gradient (masked losses included),
 * and weight decay follows the parameter's declaration in every stage.
 */
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../src/check/index.js';
import { DATASET_FORMATS, graphFields } from '../../src/check/dataSchema.js';
import { datasetFields } from '../../src/check/services.js';
import { STAGE_KINDS, DEPLOY_FORMATS } from '../../src/check/stageRules.js';
import type { ModuleInfo } from '../../src/check/modules.js';
import { optimize } from '../../src/ir/passes/index.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { DEPLOY_TARGETS } from '../../targets/index.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import type { TrainPlan } from '../../src/ir/lower/trainStage.js';
import { openStageData } from '../../src/runtime/datasets.js';
import { initialParams } from '../../src/runtime/init.js';
import { fromOrt, runOnce } from '../../src/runtime/ort.js';
import { planStage } from '../../src/stages/driver.js';
import { STAGE_MODULES } from '../../src/stages/registry.js';

const FIXTURES = resolve('test/fixtures/train');

/** Writes `recipe` into a fresh folder beside copies of the fixture data; returns the checked module. */
function checked(recipe: string): ModuleInfo {
  const dir = mkdtempSync(join(tmpdir(), 'ptr-stage-'));
  for (const f of ['sft.jsonl', 'prefs.jsonl', 'corpus.txt']) copyFileSync(join(FIXTURES, f), join(dir, f));
  writeFileSync(join(dir, 'r.pt-recipe'), recipe);
  const result = checkFiles([join(dir, 'r.pt-recipe')]);
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(errors.map((d) => `${d.code}: ${d.message}`).join('\n'));
  return result.entryModules[0]!;
}

const header = `
import std.nn     { Transformer }
import std.losses { next_token, sft as sft_loss }
tokenizer tok = chars("\\n .abcdeghimnorstu", specials: [pad, bos, eos])
model lm = Transformer(vocab: tok.vocab, ctx: 24, dim: 16, layers: 1, heads: 2)
dataset chats = jsonl("sft.jsonl", format: prompt_completion, tokenizer: tok, max_len: 24)
dataset words = text("corpus.txt", tokenizer: tok, block: 24)
`;

describe('one data schema', () => {
  it('types batch.X in the checker exactly as lowering makes its inputs', () => {
    for (const format of ['text', 'prompt_completion', 'chat', 'preference'] as const) {
      const typed = datasetFields(format, null)!;
      expect([...typed.keys()]).toEqual(DATASET_FORMATS[format].fields.map((f) => f.name));
    }
    const plan = planStage(checked(`${header}stage s: train lm on chats { loss = sft_loss(lm, batch)\n steps = 1 }`), 's') as TrainPlan;
    expect(plan.data['train']!.fields.map((f) => [f.input, f.dtype, f.shape])).toEqual(
      graphFields('prompt_completion').map((f) => [`batch.${f.name}`, f.dtype, f.name === 'tokens' || f.name === 'loss_mask' ? [8, 24] : []]),
    );
  });

  it('rejects batch.prompt in a train stage at check time (it was an internal error at lowering)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-stage-'));
    copyFileSync(join(FIXTURES, 'sft.jsonl'), join(dir, 'sft.jsonl'));
    copyFileSync(join(FIXTURES, 'corpus.txt'), join(dir, 'corpus.txt'));
    writeFileSync(join(dir, 'r.pt-recipe'), `${header}stage s: train lm on chats { loss = next_token(lm(batch.prompt), batch.prompt) }`);
    const diags = checkFiles([join(dir, 'r.pt-recipe')]).diagnostics.filter((d) => d.severity === 'error');
    expect(diags.length).toBeGreaterThan(0);
    expect(diags[0]!.message).toMatch(/prompt/);
  });
});

describe('stage kinds and deploy targets are tables', () => {
  it('has a module for every stage kind the checker knows, and a target for every deploy format', () => {
    expect(Object.keys(STAGE_MODULES).sort()).toEqual(Object.keys(STAGE_KINDS).sort());
    for (const [kind, m] of Object.entries(STAGE_MODULES)) expect(m.kind).toBe(kind);
    expect(Object.keys(DEPLOY_TARGETS).sort()).toEqual(Object.keys(DEPLOY_FORMATS).sort());
  });
});

/** `rows` examples of the plan's training data (batch 0), as reference tensors by input name. */
function batchOf(plan: TrainPlan, rows: number): Map<string, Tensor> {
  return new Map(Object.entries(openStageData(plan.data['train']!.spec, 0).trainBatch(0, rows)).map(([k, t]) => [k, fromOrt(t)]));
}

/** Rows [start, start + n) of every tensor of a batch. */
function rowsOf(batch: ReadonlyMap<string, Tensor>, start: number, n: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of batch) {
    const width = t.data.length / t.shape[0]!;
    out.set(k, makeTensor(t.dtype, [n, ...t.shape.slice(1)], t.data.slice(start * width, (start + n) * width)));
  }
  return out;
}

/** One train step of `plan` on `batch`; returns the loss and each trainable parameter's gradient (sgd, lr 1: old − new). */
async function oneStep(plan: TrainPlan, batch: ReadonlyMap<string, Tensor>): Promise<{ loss: number; grads: Map<string, Float64Array> }> {
  const feeds = new Map<string, Tensor>(batch);
  const init = initialParams(plan.params, 3);
  for (const p of plan.params) feeds.set(p.input, makeTensor('f32', p.shape, init.get(p.input)!));
  feeds.set('step', makeTensor('i64', [], [1]));
  feeds.set('seed', makeTensor('i64', [], [0]));
  const out = await runOnce(emitModel(optimize(plan.graphs['train_step']!).graph).bytes, feeds);
  const grads = new Map<string, Float64Array>();
  for (const p of plan.params.filter((q) => q.trainable)) {
    const before = feeds.get(p.input)!.data;
    const after = out.get(`new.${p.input}`)!.data;
    grads.set(p.input, Float64Array.from(before, (v, i) => v - after[i]!));
  }
  return { loss: out.get('loss')!.data[0]!, grads };
}

/** The largest difference between two gradient sets, relative to the largest gradient of each parameter. */
function worstDifference(a: ReadonlyMap<string, Float64Array>, b: ReadonlyMap<string, Float64Array>): number {
  let worst = 0;
  for (const [name, g] of a) {
    const h = b.get(name)!;
    const scale = Math.max(...g.map(Math.abs), 1e-12);
    for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i]! - h[i]!) / scale);
  }
  return worst;
}

describe('gradient accumulation', () => {
  const stage = (settings: string): TrainPlan =>
    planStage(checked(`${header}stage s: train lm on chats {\n loss = sft_loss(lm, batch)\n optimizer = sgd(lr: 1.0)\n ${settings}\n steps = 1 }`), 's') as TrainPlan;

  it('grad_accum = 4 at batch 1 gives the loss and gradients of batch 4 on a masked (SFT) loss', async () => {
    const wholePlan = stage('batch = 4');
    const batch = batchOf(wholePlan, 4);
    const whole = await oneStep(wholePlan, batch);
    const accumulated = await oneStep(stage('batch = 1\n grad_accum = 4'), batch);
    expect(accumulated.loss).toBeCloseTo(whole.loss, 5);
    expect(worstDifference(whole.grads, accumulated.grads)).toBeLessThan(1e-4);
    // The rows have 9, 8, 9 and 8 completion tokens: averaging the four one-row losses — what
    // accumulation used to do — weights tokens unevenly and gives another number.
    const one = stage('batch = 1');
    let mean = 0;
    for (let r = 0; r < 4; r++) mean += (await oneStep(one, rowsOf(batch, r, 1))).loss / 4;
    expect(Math.abs(mean - whole.loss)).toBeGreaterThan(1e-3);
  });

  it('leaves an unmasked mean loss (next_token on text) equal to the full batch as well', async () => {
    const text = (settings: string): TrainPlan =>
      planStage(checked(`${header}stage s: train lm on words {\n loss = next_token(lm(batch.tokens), batch.tokens)\n optimizer = sgd(lr: 1.0)\n ${settings}\n steps = 1 }`), 's') as TrainPlan;
    const wholePlan = text('batch = 4');
    const batch = batchOf(wholePlan, 4);
    const whole = await oneStep(wholePlan, batch);
    const accumulated = await oneStep(text('batch = 1\n grad_accum = 4'), batch);
    expect(accumulated.loss).toBeCloseTo(whole.loss, 5);
    expect(worstDifference(whole.grads, accumulated.grads)).toBeLessThan(1e-4);
  });
});

describe('weight decay follows the declaration', () => {
  const tied = `
import std.losses { next_token, sft as sft_loss }
tokenizer tok = chars("\\n .abcdeghimnorstu", specials: [pad, bos, eos])
block Tied(vocab: dim, d: dim) {
  param table: f32[vocab, d] = normal(0.02, decay: false)
  param scale: f32[d]        = ones(decay: true)
  forward(tokens: i64[B, T]) -> f32[B, T, vocab] = (gather(table, tokens) * scale) @ transpose(table, [1, 0])
}
model lm = Tied(tok.vocab, 8)
dataset chats = jsonl("sft.jsonl", format: prompt_completion, tokenizer: tok, max_len: 24)
dataset words = text("corpus.txt", tokenizer: tok, block: 24)
stage pre: train lm on words {
  loss = next_token(lm(batch.tokens), batch.tokens)
  steps = 1
}
stage tune: train lm on chats after pre {
  loss = sft_loss(lm, batch)
  steps = 1
}
`;

  it('a tied embedding read by a matmul is not decayed in any stage when its declaration says decay: false', () => {
    const module = checked(tied);
    for (const stage of ['pre', 'tune']) {
      const plan = planStage(module, stage) as TrainPlan;
      const decay = Object.fromEntries(plan.params.map((p) => [p.name, p.decay]));
      expect(decay, stage).toEqual({ table: false, scale: true });
    }
  });

  it('decays std.nn matrices and not norms, biases or embeddings', () => {
    const plan = planStage(checked(`${header}stage s: train lm on words { loss = next_token(lm(batch.tokens), batch.tokens) }`), 's') as TrainPlan;
    const decayed = new Set(plan.params.filter((p) => p.decay).map((p) => p.name));
    expect(decayed).toEqual(new Set(['blocks.0.attn.qkv.w', 'blocks.0.attn.proj.w', 'blocks.0.ff.up.w', 'blocks.0.ff.down.w', 'head.w']));
  });
});

describe('data a generate stage writes', () => {
  const recipe = `${header}
stage gen: generate lm {
  prompts = chats.prompts
  format  = prompt_completion
  samples = 2
}
stage tune: train lm on gen.output after gen {
  loss  = sft_loss(lm, batch)
  steps = 2
}
`;

  it('is late-bound: a stage that trains on it plans and compiles before the data exists', async () => {
    const plan = planStage(checked(recipe), 'tune') as TrainPlan;
    const data = plan.data['train']!;
    expect(data.spec).toMatchObject({ name: 'gen.output', format: 'prompt_completion', path: '', producedBy: 'gen', seqLen: 24 });
    expect(data.fields.map((f) => [f.input, f.shape])).toEqual([
      ['batch.tokens', [8, 24]],
      ['batch.loss_mask', [8, 24]],
    ]);
    const feeds = new Map<string, Tensor>([['tokens', makeTensor('i64', [1, 24], new Array(24).fill(1))]]);
    const init = initialParams(plan.params, 0);
    for (const p of plan.params) feeds.set(p.input, makeTensor('f32', p.shape, init.get(p.input)!));
    const out = await runOnce(emitModel(optimize(plan.graphs['inference']!).graph).bytes, feeds);
    expect(out.get('logits')!.shape).toEqual([1, 24, 21]);
  });

  it('is read from the run folder at run time, and a clear error before the stage has written it', () => {
    const plan = planStage(checked(recipe), 'tune') as TrainPlan;
    const runDir = mkdtempSync(join(tmpdir(), 'ptr-gen-'));
    expect(() => openStageData(plan.data['train']!.spec, 0, runDir)).toThrow(/dataset gen\.output: stage gen has not written it yet \(.*gen\/output\.jsonl\); run that stage first/);
    mkdirSync(join(runDir, 'gen'));
    copyFileSync(join(FIXTURES, 'sft.jsonl'), join(runDir, 'gen', 'output.jsonl'));
    const batch = openStageData(plan.data['train']!.spec, 0, runDir).trainBatch(0, 8);
    expect(batch['batch.tokens']!.dims).toEqual([8, 24]);
  });
});
