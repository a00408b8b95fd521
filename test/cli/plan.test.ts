/**
 * `ptr plan`: each stage's predicted peak memory and its parts, the parts checked
 * against sizes counted by hand for the tiny recipe; and `ptr run` refusing, before
 * any training, a stage predicted not to fit (a batch of 200,000), unless --force.
 * (How close the prediction comes to measured peak RSS: bench/memplan.ts.)
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Io } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { checkFiles } from '../../src/check/index.js';
import { formatBytes, OutOfMemoryError, predictStageMemory, requireMemory, stageDataBytes } from '../../src/runtime/memoryPlan.js';
import { planStage } from '../../src/stages/driver.js';
import { compilePlan } from '../../targets/onnx/compile.js';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-plan-'));
  cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
});

describe('predicted memory', () => {
  it('counts the weights, gradients, AdamW state and data of the tiny recipe exactly', () => {
    const module = checkFiles([join(dir, 'tiny.pt-recipe')]).entryModules[0]!;
    const plan = planStage(module, 'pretrain');
    const p = predictStageMemory(plan, compilePlan(plan, 'tiny.pt-recipe').graphs['train_step']!, stageDataBytes(plan));
    // 7,456 f32 parameters, all trainable; AdamW keeps two moments of each.
    expect(p.params).toBe(7456 * 4);
    expect(p.grads).toBe(7456 * 4);
    expect(p.optimizer).toBe(2 * 7456 * 4);
    expect(p.stepOutputs).toBe(3 * 7456 * 4);
    expect(p.data).toBe(5 * readFileSync(join(dir, 'corpus.txt')).length);
    expect(p.activations).toBeGreaterThan(0);
    expect(p.total).toBe(p.params + p.grads + p.optimizer + p.stepOutputs + p.activations + p.data + p.runtime);
    expect(() => requireMemory('pretrain', p, p.total)).not.toThrow();
    expect(() => requireMemory('pretrain', p, p.total - 1)).toThrow(OutOfMemoryError);
    expect(formatBytes(29_824)).toBe('29.1 KiB');
  });

  it('ptr plan prints one row per stage with the parts and the total', async () => {
    const out: string[] = [];
    const io: Io = { out: (t) => void out.push(t), err: (t) => void out.push(t), color: false };
    expect(await main(['plan', join(dir, 'tiny.pt-recipe')], io)).toBe(0);
    const lines = out.join('').split('\n');
    expect(lines[0]).toMatch(/^stage +params +grads +optimizer \+ outputs +activations +data +runtime +predicted peak$/);
    expect(lines[1]).toMatch(/^pretrain +29\.1 KiB +29\.1 KiB +145\.6 KiB +[\d.]+ [KM]iB +[\d.]+ KiB +[\d.]+ MiB +[\d.]+ MiB$/);
    expect(lines[2]).toMatch(/^available now: [\d.]+ [MG]iB \(ptr run refuses a stage predicted to need more, unless --force\)$/);
  });
});

describe('ptr run and memory', () => {
  it('refuses, before training, a stage predicted to need more memory than there is', () => {
    const recipe = join(dir, 'huge.pt-recipe');
    writeFileSync(recipe, readFileSync(join(dir, 'tiny.pt-recipe'), 'utf8').replace('dim: 16', 'dim: 16384'));
    const r = spawnSync(process.execPath, [resolve('bin/ptr.js'), 'run', 'huge.pt-recipe', '--out', 'huge'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: stage pretrain is predicted to need [\d.]+ GiB at its peak \(new weights and state [\d.]+ GiB, optimizer state [\d.]+ GiB\), but only [\d.]+ [MG]iB is available; lower batch \(or use grad_accum\), the sequence length or the model size, or give --force to run anyway \(see ptr plan\)\n$/m);
    expect(existsSync(join(dir, 'huge', 'metrics.jsonl'))).toBe(false);
  });
});
