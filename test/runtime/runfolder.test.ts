/**
 * Run folders that never lose work, as library calls: checkpoints of one run are
 * never pruned by another's, trainer.json is validated field by field, what
 * changed since a checkpoint is named, the lock lets one run in and names its
 * holder, leftovers of killed writes are recognised, and every non-finite
 * number (eval loss, gradient norm, weights) stops the run keeping only
 * checkpoints that can be continued.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkFiles } from '../../src/check/index.js';
import { lowerTrainStage, type TrainSettings } from '../../src/ir/lower/trainStage.js';
import { CheckpointError, latestCheckpointDir, loadCheckpoint, NonFiniteWeightsError, readTrainerState } from '../../src/runtime/checkpoint.js';
import { Evaluator } from '../../src/runtime/evaluator.js';
import { readMetrics } from '../../src/runtime/metrics.js';
import { archiveRunFolder, fingerprintChanges, isLeftoverTemp, removeLeftoverTemps, stageFingerprint, type StageFingerprint } from '../../src/runtime/runFolder.js';
import { acquireRunLock, LOCK_FILE, RunFolderBusyError } from '../../src/runtime/runLock.js';
import { readSafetensors, writeSafetensors } from '../../src/runtime/safetensors.js';
import { StepRunner } from '../../src/runtime/stepRunner.js';
import { DivergedError, train } from '../../src/runtime/trainer.js';
import { writeCompiled } from '../../src/stages/compiled.js';
import { compilePlan, type Manifest } from '../../targets/onnx/compile.js';

const FIXTURES = join(__dirname, '..', 'fixtures', 'train');

function compileFixture(edit: (text: string) => string = (t) => t): { manifest: Manifest<TrainSettings>; modelDir: string; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'ptr-runfolder-'));
  cpSync(FIXTURES, root, { recursive: true });
  const file = join(root, 'tiny.pt-recipe');
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  const result = checkFiles([file]);
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const compiled = compilePlan(lowerTrainStage(result.entryModules[0]!, null), 'tiny.pt-recipe');
  const modelDir = join(root, 'model');
  writeCompiled(compiled, modelDir);
  return { manifest: compiled.manifest, modelDir, root };
}

const FINGERPRINT: StageFingerprint = { version: '0.1.0', steps: 12, seed: 7, recipe: 'r'.repeat(64), data: {} };

afterEach(() => {
  vi.restoreAllMocks();
});

describe('checkpoints of one run are never pruned by another', () => {
  it('a new run into a folder with a longer finished run keeps its own (lower-numbered) checkpoints', async () => {
    const long = compileFixture((t) => t.replace('steps     = 12', 'steps     = 20'));
    const runDir = join(long.root, 'run');
    await train(long.manifest, { modelDir: long.modelDir, runDir, progress: null, checkpointEvery: 4, identity: { run: 'aaaaaaaaaaaaaaaa', fingerprint: { ...FINGERPRINT, steps: 20 } } });
    const short = compileFixture();
    const result = await train(short.manifest, { modelDir: short.modelDir, runDir, progress: null, checkpointEvery: 4, identity: { run: 'bbbbbbbbbbbbbbbb', fingerprint: FINGERPRINT } });
    const root = join(runDir, 'checkpoints', 'pretrain');
    // The new run's last two, and the old run's last two: nothing of either pruned by the other.
    expect(readdirSync(root).filter((f) => f.startsWith('step-')).sort()).toEqual(['step-000008', 'step-000012', 'step-000016', 'step-000020']);
    expect(result.checkpoint).toBe(join(root, 'step-000012'));
    expect(latestCheckpointDir(runDir, 'pretrain')).toBe(join(root, 'step-000012'));
    expect(readTrainerState(join(root, 'step-000012'))).toMatchObject({ run: 'bbbbbbbbbbbbbbbb', step: 12, complete: true, fingerprint: FINGERPRINT });
    // And metrics.jsonl holds each step of the stage once: the new run's.
    const steps = readMetrics(join(runDir, 'metrics.jsonl')).filter((m) => m['split'] === undefined).map((m) => m.step);
    expect(steps).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });
});

describe('sharded checkpoints', () => {
  it('above the shard size, weights are written as Hugging Face shards them, and a resume from them is exact', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const full = await train(manifest, { modelDir, runDir: join(root, 'full'), progress: null, checkpointEvery: 4 });
    const runDir = join(root, 'sharded');
    // 8 KB shards: the 30 KB of weights and 60 KB of AdamW state take several each.
    await train(manifest, { modelDir, runDir, progress: null, checkpointEvery: 4, stopAfter: 4, save: { shardBytes: 8000 } });
    const dir = latestCheckpointDir(runDir, 'pretrain')!;
    const files = readdirSync(dir).sort();
    expect(files).toContain('model.safetensors.index.json');
    expect(files).toContain('optimizer.safetensors.index.json');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(2);
    expect(files).not.toContain('model.safetensors');
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(7456 * 4);
    expect(Object.keys(index.weight_map).sort()).toEqual(manifest.params.map((p) => p.name).sort());
    const resumed = await train(manifest, { modelDir, runDir, progress: null, checkpointEvery: 4, resume: true });
    expect(resumed.firstStep).toBe(5);
    expect(resumed.losses).toEqual(full.losses.slice(4));
  });
});

describe('trainer.json is validated field by field', () => {
  const good = { stage: 'pretrain', step: 4, steps: 12, seed: 7, rng: { scheme: 'seed-and-step', seed: 7 }, complete: false };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a step past the total', { step: 99999 }, /"step" 99999 is past "steps" 12/],
    ['a negative step', { step: -1 }, /"step" is -1; expected an integer ≥ 0/],
    ['a null step', { step: null }, /"step" is null; expected an integer ≥ 0/],
    ['a step that is not a number', { step: 'abc' }, /"step" is "abc"; expected an integer ≥ 0/],
    ['a fractional step', { step: 2.5 }, /"step" is 2\.5; expected an integer ≥ 0/],
    ['complete before the last step', { complete: true }, /"complete" is true but "step" is 4 of 12/],
    ['another stage', { stage: 'sft' }, /"stage" is "sft", but the checkpoint is in stage pretrain's folder/],
    ['an rng seed that is not the seed', { rng: { scheme: 'seed-and-step', seed: 8 } }, /"rng" is .*; expected \{"scheme": "seed-and-step", "seed": 7\}/],
    ['a run id that is not hex', { run: '../x' }, /"run" is "\.\.\/x"; expected the run's hex id/],
  ];
  for (const [what, change, message] of cases) {
    it(`refuses ${what}`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'ptr-trainer-json-'));
      writeFileSync(join(dir, 'trainer.json'), JSON.stringify({ ...good, ...change }));
      expect(() => readTrainerState(dir, { stage: 'pretrain', steps: 12 })).toThrow(CheckpointError);
      expect(() => readTrainerState(dir, { stage: 'pretrain', steps: 12 })).toThrow(message);
    });
  }

  it('refuses a step past the stage’s steps now, and not-JSON, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-trainer-json-'));
    writeFileSync(join(dir, 'trainer.json'), JSON.stringify({ ...good, step: 12, complete: true }));
    expect(() => readTrainerState(dir, { stage: 'pretrain', steps: 10 })).toThrow(`${join(dir, 'trainer.json')}: "step" 12 is past the stage's 10 steps`);
    writeFileSync(join(dir, 'trainer.json'), '{"step": ');
    expect(() => readTrainerState(dir)).toThrow(/trainer\.json: .*JSON.* \(the checkpoint is damaged; delete its folder to resume from the one before\)/);
  });
});

describe('fingerprints', () => {
  it('name what changed since a checkpoint, and nothing when nothing did', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-fingerprint-'));
    const recipe = join(dir, 'r.pt-recipe');
    const data = join(dir, 'data.txt');
    writeFileSync(recipe, 'a');
    writeFileSync(data, 'hello');
    const make = (steps: number, seed: number): StageFingerprint => stageFingerprint({ version: '1', steps, seed, sources: [recipe], dataFiles: [data], baseDir: dir });
    const before = make(12, 7);
    expect(before.data).toEqual({ 'data.txt': { bytes: 5, sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824' } });
    expect(fingerprintChanges(before, make(12, 7))).toEqual([]);
    writeFileSync(recipe, 'b');
    writeFileSync(data, 'hello!');
    expect(fingerprintChanges(before, { ...make(20, 8), version: '2' })).toEqual([
      'steps 12 → 20',
      'seed 7 → 8',
      'the recipe (or a file it imports) was edited',
      'data data.txt changed (5 → 6 bytes)',
      'pt-recipe 1 → 2',
    ]);
    // A checkpoint of an older version, with only steps and seed, is compared on those.
    expect(fingerprintChanges({ steps: 12, seed: 7 }, make(12, 7))).toEqual([]);
  });
});

describe('the run folder lock', () => {
  it('lets one holder in, names it to the next, and is free again after release', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-lock-'));
    const lock = acquireRunLock(dir);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    const error = (() => {
      try {
        acquireRunLock(dir);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(RunFolderBusyError);
    expect((error as Error).message).toMatch(new RegExp(`^${dir} is in use by another ptr run \\(pid ${process.pid} on .*, since .*\\); wait for it to finish, stop it, or give --out a different folder$`));
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    acquireRunLock(dir).release();
  });

  it('takes over the lock of a process that is gone, and of a lock file cut short', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-lock-'));
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const pid = Number(dead.stdout);
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, host: hostname(), since: 'then', token: 'old' }));
    const lock = acquireRunLock(dir);
    expect(lock.owner.pid).toBe(process.pid);
    lock.release();
    writeFileSync(join(dir, LOCK_FILE), '{"pid": 12');
    acquireRunLock(dir).release();
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('leftovers and archives', () => {
  it('recognises the temporaries of killed writes and removes only those', () => {
    for (const name of ['.step-000004.tmp-1234', '.model.safetensors.1234.a1b2c3d4e5f6.tmp', '.lock.stale-1-abcd']) expect(isLeftoverTemp(name), name).toBe(true);
    for (const name of ['step-000004', 'latest', 'metrics.jsonl', '.lock', 'run.json']) expect(isLeftoverTemp(name), name).toBe(false);
    const dir = mkdtempSync(join(tmpdir(), 'ptr-leftovers-'));
    mkdirSync(join(dir, 'checkpoints', 'pretrain', '.step-000004.tmp-1234'), { recursive: true });
    mkdirSync(join(dir, 'checkpoints', 'pretrain', 'step-000002'));
    writeFileSync(join(dir, 'checkpoints', 'pretrain', 'step-000002', '.model.safetensors.99.00ff00ff00ff.tmp'), 'x');
    writeFileSync(join(dir, 'metrics.jsonl'), '');
    expect(removeLeftoverTemps(dir).sort()).toEqual([join(dir, 'checkpoints', 'pretrain', '.step-000004.tmp-1234'), join(dir, 'checkpoints', 'pretrain', 'step-000002', '.model.safetensors.99.00ff00ff00ff.tmp')].sort());
    expect(readdirSync(join(dir, 'checkpoints', 'pretrain'))).toEqual(['step-000002']);
  });

  it('archives everything but the lock into a sibling folder', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ptr-archive-')), 'run');
    mkdirSync(join(dir, 'checkpoints'), { recursive: true });
    writeFileSync(join(dir, 'metrics.jsonl'), '{}\n');
    const lock = acquireRunLock(dir);
    const archive = archiveRunFolder(dir, new Date('2026-01-02T03:04:05.678Z'));
    expect(archive).toBe(`${dir}.archived-2026-01-02T03-04-05`);
    expect(readdirSync(archive).sort()).toEqual(['checkpoints', 'metrics.jsonl']);
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
    expect(archiveRunFolder(dir, new Date('2026-01-02T03:04:05.678Z'))).toBe(`${dir}.archived-2026-01-02T03-04-05-2`);
    lock.release();
  });
});

describe('non-finite numbers stop the run; only continuable checkpoints are kept', () => {
  it('a NaN validation loss stops the run before its checkpoint, naming stage, step and the last good checkpoint', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const runDir = join(root, 'run');
    const real = Evaluator.prototype.evaluate;
    let calls = 0;
    vi.spyOn(Evaluator.prototype, 'evaluate').mockImplementation(async function (this: Evaluator, ...args) {
      calls++;
      return calls === 2 ? NaN : real.apply(this, args);
    });
    const error = await train(manifest, { modelDir, runDir, progress: null }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DivergedError);
    expect((error as Error).message).toBe(`stage pretrain: the validation loss is NaN at step 8; stopping (the last good checkpoint is ${join(runDir, 'checkpoints', 'pretrain', 'step-000004')}). Try a lower learning rate or clip_norm.`);
    expect(latestCheckpointDir(runDir, 'pretrain')).toMatch(/step-000004$/);
    expect(readTrainerState(latestCheckpointDir(runDir, 'pretrain')!).valLoss).toBeGreaterThan(0);
  });

  it('a non-finite gradient norm stops the run', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const real = StepRunner.prototype.run;
    vi.spyOn(StepRunner.prototype, 'run').mockImplementation(async function (this: StepRunner, ...args) {
      const results = await real.apply(this, args);
      return args[1] === 3 ? results.map((r) => ({ ...r, grad_norm: Infinity })) : results;
    });
    const error = await train(manifest, { modelDir, runDir: join(root, 'run'), progress: null }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DivergedError);
    expect((error as Error).message).toMatch(/^stage pretrain: the gradient norm is Infinity at step 3; stopping \(no checkpoint was written yet\)/);
  });

  it('a checkpoint holding NaN weights is refused on load, naming the file and tensor', async () => {
    const { manifest, modelDir, root } = compileFixture();
    const runDir = join(root, 'run');
    await train(manifest, { modelDir, runDir, progress: null, stopAfter: 4, checkpointEvery: 4 });
    const dir = latestCheckpointDir(runDir, 'pretrain')!;
    const file = join(dir, 'model.safetensors');
    const model = readSafetensors(file);
    (model.tensors.get('head.w')!.data as Float32Array)[3] = NaN;
    writeSafetensors(file, model.tensors, model.metadata);
    const own = manifest.params.filter((p) => p.model === manifest.model);
    expect(() => loadCheckpoint(dir, own, null)).toThrow(NonFiniteWeightsError);
    expect(() => loadCheckpoint(dir, own, null)).toThrow(`${file}: 'head.w' holds NaN (element 3); these weights diverged and cannot be used`);
  });
});
