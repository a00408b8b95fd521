/**
 * Resume after a real kill: `ptr run` is killed with SIGKILL once it has
 * written a checkpoint, then `ptr run --resume` finishes the stage. Every
 * step's loss must equal, bit for bit, that of a run that was never killed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { readMetrics } from '../../src/runtime/metrics.js';

const BIN = resolve('bin/ptr.js');

it('continues a SIGKILLed run with exactly the losses of an uninterrupted one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptr-kill-'));
  cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
  const recipe = join(dir, 'tiny.pt-recipe');
  writeFileSync(recipe, readFileSync(recipe, 'utf8').replace('steps     = 12', 'steps     = 600').replace('eval every 4', 'eval every 50'));

  const full = spawnSync(process.execPath, [BIN, 'run', 'tiny.pt-recipe', '--out', 'full'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  expect(full.status, full.stderr).toBe(0);

  const child = spawn(process.execPath, [BIN, 'run', 'tiny.pt-recipe', '--out', 'killed'], { cwd: dir, stdio: 'ignore' });
  const latest = join(dir, 'killed', 'checkpoints', 'pretrain', 'latest');
  const exited = new Promise<void>((done) => child.on('exit', () => done()));
  for (let i = 0; i < 600 && !existsSync(latest) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25));
  child.kill('SIGKILL');
  await exited;
  const killedAt = readMetrics(join(dir, 'killed', 'metrics.jsonl')).filter((m) => m['split'] === undefined).length;

  const resumed = spawnSync(process.execPath, [BIN, 'run', 'tiny.pt-recipe', '--out', 'killed', '--resume'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  expect(resumed.status, resumed.stderr).toBe(0);
  const losses = (run: string): number[] =>
    readMetrics(join(dir, run, 'metrics.jsonl'))
      .filter((m) => m['split'] === undefined)
      .map((m) => m['loss'] as number);
  expect(losses('killed')).toEqual(losses('full'));
  expect(losses('full')).toHaveLength(600);
  // The kill came mid-run (not after the last step), so the resume had work to do.
  expect(killedAt).toBeLessThan(600);
});
