/**
 * The training loop end to end on the tiny fixture: losses fall, a run killed
 * after a checkpoint and resumed computes exactly the losses of an
 * uninterrupted run, a diverging loss stops the run naming stage and step,
 * and a checkpoint of the wrong shape is refused with both shapes named.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../src/check/index.js';
import { lowerTrainStage, type TrainSettings } from '../../src/ir/lower/trainStage.js';
import { CheckpointError, latestCheckpointDir } from '../../src/runtime/checkpoint.js';
import { readMetrics } from '../../src/runtime/metrics.js';
import { readSafetensors } from '../../src/runtime/safetensors.js';
import { DivergedError, train } from '../../src/runtime/trainer.js';
import { compilePlan, type Manifest } from '../../targets/onnx/compile.js';
import { writeCompiled } from '../../src/stages/compiled.js';

const FIXTURES = join(__dirname, '..', 'fixtures', 'train');

/** Copies the fixture folder, optionally editing the recipe text, and compiles its stage. */
function compileFixture(edit: (text: string) => string = (t) => t, recipe = 'tiny.pt-recipe'): { manifest: Manifest<TrainSettings>; modelDir: string; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'ptr-train-'));
  cpSync(FIXTURES, root, { recursive: true });
  const file = join(root, recipe);
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  const result = checkFiles([file]);
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const compiled = compilePlan(lowerTrainStage(result.entryModules[0]!, null), recipe);
  const modelDir = join(root, 'model');
  writeCompiled(compiled, modelDir);
  return { manifest: compiled.manifest, modelDir, root };
}

describe('training loop', () => {
  it('lowers the loss on the tiny corpus and writes metrics and a safetensors checkpoint', async () => {
    const { manifest, modelDir, root } = compileFixture((t) => t.replace('steps     = 12', 'steps     = 40'));
    const runDir = join(root, 'run');
    const r = await train(manifest, { modelDir, runDir, progress: null });
    expect(r.losses).toHaveLength(40);
    const first = r.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = r.losses.slice(-5).reduce((a, b) => a + b) / 5;
    expect(first).toBeCloseTo(Math.log(19), 0);
    expect(last).toBeLessThan(first - 0.3);
    expect(r.evals.map((e) => e.step)).toEqual([4, 8, 12, 16, 20, 24, 28, 32, 36, 40]);
    const metrics = readMetrics(join(runDir, 'metrics.jsonl'));
    expect(metrics.filter((m) => m['split'] === undefined).map((m) => m['loss'])).toEqual(r.losses);
    const ck = latestCheckpointDir(runDir, 'pretrain')!;
    expect(ck).toMatch(/step-000040$/);
    const model = readSafetensors(join(ck, 'model.safetensors'));
    expect([...model.tensors.keys()].sort()).toEqual(manifest.params.map((p) => p.name).sort());
    expect(model.tensors.get('head.w')!.shape).toEqual([16, 19]);
    const trainer = JSON.parse(readFileSync(join(ck, 'trainer.json'), 'utf8'));
    expect(trainer).toMatchObject({ stage: 'pretrain', step: 40, complete: true });
  });

  it('resumes a killed run exactly: the same losses, bit for bit, as an uninterrupted run', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const full = await train(manifest, { modelDir, runDir: join(root, 'full'), progress: null, checkpointEvery: 4 });
    const runDir = join(root, 'killed');
    // Killed after step 6: the checkpoint of step 4 survives, steps 5 and 6 are lost.
    const killed = await train(manifest, { modelDir, runDir, progress: null, checkpointEvery: 4, stopAfter: 6 });
    expect(killed.losses).toEqual(full.losses.slice(0, 6));
    expect(latestCheckpointDir(runDir, 'pretrain')).toMatch(/step-000004$/);
    const resumed = await train(manifest, { modelDir, runDir, progress: null, checkpointEvery: 4, resume: true });
    expect(resumed.firstStep).toBe(5);
    expect(resumed.losses).toEqual(full.losses.slice(4));
    expect(resumed.evals).toEqual(full.evals.filter((e) => e.step > 4));
    // The metrics of the lost steps 5 and 6 were replaced, not duplicated.
    const steps = readMetrics(join(runDir, 'metrics.jsonl')).filter((m) => m['split'] === undefined).map((m) => m.step);
    expect(steps).toEqual([...Array(12).keys()].map((i) => i + 1));
    // The final weights are identical too.
    const a = readSafetensors(join(latestCheckpointDir(join(root, 'full'), 'pretrain')!, 'model.safetensors'));
    const b = readSafetensors(join(latestCheckpointDir(runDir, 'pretrain')!, 'model.safetensors'));
    for (const [name, t] of a.tensors) expect(Array.from(b.tensors.get(name)!.data as Float32Array), name).toEqual(Array.from(t.data as Float32Array));
  });

  it('stops on a non-finite loss, naming the stage and step, and keeps the last good checkpoint', async () => {
    const { manifest, modelDir, root } = compileFixture((t) =>
      t.replace('optimizer = adamw(lr: 3e-3, betas: (0.9, 0.99), weight_decay: 0.1, clip_norm: 1.0)', 'optimizer = sgd(lr: 1e12)').replace('steps     = 12', 'steps     = 30'),
    );
    const runDir = join(root, 'run');
    const error = await train(manifest, { modelDir, runDir, progress: null, checkpointEvery: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DivergedError);
    const message = (error as Error).message;
    const step = Number(/at step (\d+)/.exec(message)?.[1]);
    expect(message).toMatch(/^stage pretrain: the loss is (NaN|Infinity|-Infinity) at step \d+; stopping \(the last good checkpoint is .*step-\d+\)/);
    expect(latestCheckpointDir(runDir, 'pretrain')).toMatch(new RegExp(`step-${String(step - 1).padStart(6, '0')}$`));
  });

  it('refuses a checkpoint whose shapes do not match the recipe, naming both shapes', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const runDir = join(root, 'run');
    await train(manifest, { modelDir, runDir, progress: null, stopAfter: 4, checkpointEvery: 4 });
    const wider = compileFixture((t) => t.replace('dim: 16', 'dim: 32'));
    const error = await train(wider.manifest, { modelDir: wider.modelDir, runDir, progress: null, resume: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toMatch(/model\.safetensors: 'embed\.token\.table' has shape \[19, 16\] but the recipe's model needs \[19, 32\]$/);
    expect(existsSync(join(latestCheckpointDir(runDir, 'pretrain')!, 'model.safetensors'))).toBe(true);
  });
});

describe('several steps per session.run', () => {
  it('gives the losses, evals and checkpoints of one step per run, resumed or not', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const one = await train(manifest, { modelDir, runDir: join(root, 'one'), progress: null, checkpointEvery: 6 });
    const runDir = join(root, 'five');
    // Chunks of at most 5 steps, cut at evals (every 4) and checkpoints (every 6); killed after step 7.
    const killed = await train(manifest, { modelDir, runDir, progress: null, checkpointEvery: 6, stepsPerRun: 5, stopAfter: 7 });
    expect(killed.losses).toEqual(one.losses.slice(0, 7));
    const resumed = await train(manifest, { modelDir, runDir, progress: null, checkpointEvery: 6, stepsPerRun: 5, resume: true });
    expect(resumed.firstStep).toBe(7);
    expect(resumed.losses).toEqual(one.losses.slice(6));
    expect([...killed.evals, ...resumed.evals.filter((e) => e.step > 7)]).toEqual(one.evals);
  });
});

describe('damaged checkpoints', () => {
  it('refuses a truncated model.safetensors with the file and the damage named', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const runDir = join(root, 'run');
    await train(manifest, { modelDir, runDir, progress: null, stopAfter: 4, checkpointEvery: 4 });
    const file = join(latestCheckpointDir(runDir, 'pretrain')!, 'model.safetensors');
    writeFileSync(file, readFileSync(file).subarray(0, 100));
    const error = await train(manifest, { modelDir, runDir, progress: null, resume: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toMatch(/model\.safetensors: header length \d+ exceeds the file size 100 \(the checkpoint is damaged; delete its folder to resume from the one before\)$/);
  });

  it('resumes from the checkpoint before when the damaged one is deleted', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const full = await train(manifest, { modelDir, runDir: join(root, 'full'), progress: null });
    const runDir = join(root, 'run');
    await train(manifest, { modelDir, runDir, progress: null, stopAfter: 8, checkpointEvery: 4 });
    rmSync(latestCheckpointDir(runDir, 'pretrain')!, { recursive: true });
    expect(latestCheckpointDir(runDir, 'pretrain')).toMatch(/step-000004$/);
    const resumed = await train(manifest, { modelDir, runDir, progress: null, resume: true });
    expect(resumed.firstStep).toBe(5);
    expect(resumed.losses).toEqual(full.losses.slice(4));
  });
});

describe('gradient accumulation', () => {
  it('two micro-batches of 2 train like one batch of 4 (same examples, same updates)', async () => {
    const whole = compileFixture();
    const split = compileFixture((t) => t.replace('batch     = 4', 'batch     = 2\n  grad_accum = 2'));
    expect(split.manifest.settings.gradAccum).toBe(2);
    expect(split.manifest.graphs['train_step']!.inputs.find((i) => i.name === 'batch.tokens')!.shape).toEqual([4, 16]);
    const a = await train(whole.manifest, { modelDir: whole.modelDir, runDir: join(whole.root, 'run'), progress: null });
    const b = await train(split.manifest, { modelDir: split.modelDir, runDir: join(split.root, 'run'), progress: null });
    expect(b.losses).toHaveLength(12);
    b.losses.forEach((loss, i) => expect(Math.abs(loss - a.losses[i]!), `step ${i + 1}`).toBeLessThan(1e-5));
  });
});
