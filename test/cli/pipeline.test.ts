/**
 * A multi-stage pipeline end to end (examples/arith: pretrain → SFT → reward
 * model → DPO), a few steps each: every stage starts from the right weights.
 * DPO's first loss is exactly ln 2 only if the policy continues from the SFT
 * checkpoint and the frozen reference is loaded from that same checkpoint.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { readMetrics } from '../../src/runtime/metrics.js';

it('runs pretrain, sft, reward and align in order, each from the weights it names', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptr-pipeline-'));
  cpSync(resolve('examples/arith'), dir, { recursive: true });
  const r = spawnSync(process.execPath, [resolve('bin/ptr.js'), 'run', 'pipeline.pt-recipe', '--out', 'run', '--steps', '3'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  // grpo (an rl stage) cannot run in this version, so the run exits 1 after the four train stages, saying so.
  expect(r.status, r.stderr).toBe(1);
  expect(r.stdout).toMatch(/^not run: stage grpo: this version checks rl stages but does not run them yet/m);
  expect(r.stdout).toMatch(/^not run: deploy policy @ grpo to tensorrt: stage grpo did not run$/m);
  expect(r.stderr).toMatch(/error: 2 of what pipeline.pt-recipe asks for did not run/);
  expect(r.stderr).toMatch(/stage align: 806,144 trainable parameters \(\+806,144 frozen\)/);
  const order = [...r.stdout.matchAll(/^stage (\w+): steps/gm)].map((m) => m[1]);
  expect(order).toEqual(['pretrain', 'sft', 'reward', 'align']);
  for (const stage of order) expect(existsSync(join(dir, 'run', 'checkpoints', stage, 'step-000003', 'model.safetensors')), stage).toBe(true);
  const first = (stage: string): number => readMetrics(join(dir, 'run', 'metrics.jsonl')).find((m) => m.stage === stage && m.step === 1)!['loss'] as number;
  expect(first('align')).toBeCloseTo(Math.LN2, 5);
  // A fresh scoring layer scores both answers almost alike: the Bradley–Terry loss starts near ln 2.
  expect(Math.abs(first('reward') - Math.LN2)).toBeLessThan(0.02);
});
