/**
 * Run folders through `ptr run`, as a user meets them: a second run into a
 * folder that holds one is refused (exit 1, saying --resume, --fresh or --out);
 * --fresh archives the old run and keeps every new checkpoint; --resume refuses
 * a changed recipe naming the change unless --allow-changed; a tampered
 * trainer.json is refused; a second concurrent run is refused naming the
 * holder's pid; SIGINT/SIGTERM stop with a checkpoint and exit 130/143, and the
 * resumed run ends with exactly the weights of an uninterrupted one; leftovers
 * of killed writes are removed at the next start.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readMetrics } from '../../src/runtime/metrics.js';

const BIN = resolve('bin/ptr.js');
let dir = '';

function ptr(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A copy of the tiny recipe with `steps` and eval interval changed, as `name`. */
function recipe(name: string, steps: number, evalEvery = 4): string {
  const text = readFileSync(join(dir, 'tiny.pt-recipe'), 'utf8').replace('steps     = 12', `steps     = ${steps}`).replace('eval every 4', `eval every ${evalEvery}`);
  writeFileSync(join(dir, name), text);
  return name;
}

const trainSteps = (run: string): number[] =>
  readMetrics(join(dir, run, 'metrics.jsonl'))
    .filter((m) => m['split'] === undefined)
    .map((m) => m.step);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-cli-runfolder-'));
  cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
});

describe('a run folder that holds a run', () => {
  it('is not overwritten: a plain run is refused, --fresh archives it and keeps every new checkpoint', () => {
    const long = recipe('long.pt-recipe', 20);
    expect(ptr('run', long, '--out', 'shared').code).toBe(0);
    const again = ptr('run', 'tiny.pt-recipe', '--out', 'shared');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: shared already holds a run of long\.pt-recipe started \S+ with checkpoints of pretrain; give --resume to continue it, --fresh to archive it \(to shared\.archived-<time>\) and start over, or --out DIR for another folder\n$/);
    expect(again.stderr).not.toMatch(/internal error/);
    const fresh = ptr('run', 'tiny.pt-recipe', '--out', 'shared', '--fresh');
    expect(fresh.code, fresh.stderr).toBe(0);
    const archive = /archived the earlier run in shared to (shared\.archived-\S+)/.exec(fresh.stderr)?.[1];
    expect(archive).toBeDefined();
    expect(readdirSync(join(dir, archive!, 'checkpoints', 'pretrain')).sort()).toEqual(['latest', 'step-000016', 'step-000020']);
    expect(readdirSync(join(dir, 'shared', 'checkpoints', 'pretrain')).sort()).toEqual(['latest', 'step-000008', 'step-000012']);
    expect(readFileSync(join(dir, 'shared', 'checkpoints', 'pretrain', 'latest'), 'utf8')).toBe('step-000012\n');
    expect(trainSteps('shared')).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(JSON.parse(readFileSync(join(dir, 'shared', 'run.json'), 'utf8'))).toMatchObject({ format: 1, recipe: join(dir, 'tiny.pt-recipe'), stages: { pretrain: { steps: 12, seed: 7 } } });
    expect(ptr('run', 'tiny.pt-recipe', '--out', 'shared', '--fresh', '--resume').code).toBe(2);
  });

  it('--resume refuses a changed recipe naming what changed; --allow-changed continues and says so', () => {
    const r = recipe('grow.pt-recipe', 12);
    expect(ptr('run', r, '--out', 'grow').code).toBe(0);
    recipe('grow.pt-recipe', 16);
    const refused = ptr('run', r, '--out', 'grow', '--resume');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /error: stage pretrain: the checkpoint grow\/checkpoints\/pretrain\/step-000012 was written by a different run setup: steps 12 → 16; the recipe \(or a file it imports\) was edited\. Resuming would not reproduce the run; give --allow-changed to continue anyway/,
    );
    expect(ptr('run', r, '--out', 'grow', '--allow-changed').code).toBe(2);
    const allowed = ptr('run', r, '--out', 'grow', '--resume', '--allow-changed');
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stderr).toMatch(/warning: stage pretrain: the checkpoint .* steps 12 → 16; .*continuing anyway \(--allow-changed\)/);
    expect(allowed.stdout).toMatch(/stage pretrain: steps 13–16 /);
    expect(trainSteps('grow')).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
  });

  it('refuses a tampered trainer.json on resume and when sampling, naming the field', () => {
    expect(ptr('run', 'tiny.pt-recipe', '--out', 'tampered').code).toBe(0);
    const file = join(dir, 'tampered', 'checkpoints', 'pretrain', 'step-000012', 'trainer.json');
    const trainer = JSON.parse(readFileSync(file, 'utf8'));
    // (Every malformed field is covered in test/runtime/runfolder.test.ts; here, through both commands.)
    for (const [step, why, command] of [
      [99999, /"step" 99999 is past "steps" 12/, ['run', 'tiny.pt-recipe', '--out', 'tampered', '--resume']],
      [null, /"step" is null; expected an integer ≥ 0/, ['run', 'tiny.pt-recipe', '--out', 'tampered', '--resume']],
      [99999, /"step" 99999 is past "steps" 12/, ['sample', 'tiny.pt-recipe', '--run', 'tampered', '--tokens', '2']],
    ] as const) {
      writeFileSync(file, JSON.stringify({ ...trainer, step }));
      const r = ptr(...command);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toMatch(/tampered\/checkpoints\/pretrain\/step-000012\/trainer\.json/);
    }
  });

  it('removes the temporaries of killed writes at the next start', () => {
    expect(ptr('run', 'tiny.pt-recipe', '--out', 'leftovers', '--steps', '4').code).toBe(0);
    const temp = join(dir, 'leftovers', 'checkpoints', 'pretrain', '.step-000008.tmp-99999');
    mkdirSync(temp);
    writeFileSync(join(temp, 'model.safetensors'), 'half');
    const r = ptr('run', 'tiny.pt-recipe', '--out', 'leftovers', '--steps', '4', '--resume');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed leftovers\/checkpoints\/pretrain\/\.step-000008\.tmp-99999, left by a run killed while writing/);
    expect(existsSync(temp)).toBe(false);
  });
});

describe('processes', () => {
  /** Starts `ptr run` in the background; resolves when `ready` exists (or the process ended). */
  async function start(args: string[], ready: string): Promise<{ child: ReturnType<typeof spawn>; done: Promise<{ code: number | null; stdout: string; stderr: string }> }> {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolveDone) => child.on('exit', (code) => resolveDone({ code, stdout, stderr })));
    for (let i = 0; i < 2400 && !existsSync(join(dir, ready)) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25));
    return { child, done };
  }

  it('a second run on a folder in use is refused at once, naming the pid that holds it', async () => {
    const r = recipe('busy.pt-recipe', 200_000, 100_000);
    const first = await start(['run', r, '--out', 'busy'], 'busy/metrics.jsonl');
    const second = ptr('run', r, '--out', 'busy', '--resume');
    first.child.kill('SIGKILL');
    await first.done;
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`error: busy is in use by another ptr run \\(pid ${first.child.pid} on .*\\); wait for it to finish, stop it, or give --out a different folder`));
    // The killed run's lock is stale now: the next run takes it over.
    const resumed = ptr('run', r, '--out', 'busy', '--fresh', '--steps', '2');
    expect(resumed.code, resumed.stderr).toBe(0);
  });

  /** Runs `recipe` in `out` until its first checkpoint, sends `signal`, and checks the stop; returns the step it stopped after. */
  async function interrupt(r: string, out: string, signal: 'SIGINT' | 'SIGTERM', code: number): Promise<number> {
    const run = await start(['run', r, '--out', out], `${out}/checkpoints/pretrain/latest`);
    run.child.kill(signal);
    const stopped = await run.done;
    expect(stopped.code, stopped.stderr).toBe(code);
    const message = new RegExp(`error: stage pretrain: stopped by ${signal} after step (\\d+) of 500; checkpoint ${out}/checkpoints/pretrain/step-0*(\\d+)\\. Run the same command with --resume to continue\\.`);
    expect(stopped.stderr).toMatch(message);
    const [, step, saved] = message.exec(stopped.stderr)!;
    expect(saved).toBe(step);
    expect(Math.max(...trainSteps(out))).toBe(Number(step));
    return Number(step);
  }

  it('SIGINT finishes the step, writes a checkpoint, says how to resume and exits 130', async () => {
    expect(await interrupt(recipe('sigint.pt-recipe', 500, 50), 'sigint', 'SIGINT', 130)).toBeLessThan(500);
  });

  it('SIGTERM does the same with exit 143, and the resumed run ends with the weights of an uninterrupted one', async () => {
    const r = recipe('sigterm.pt-recipe', 500, 50);
    expect(await interrupt(r, 'sigterm', 'SIGTERM', 143)).toBeLessThan(500);
    const resumed = ptr('run', r, '--out', 'sigterm', '--resume');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(trainSteps('sigterm')).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    const full = ptr('run', r, '--out', 'sigterm-full');
    expect(full.code, full.stderr).toBe(0);
    const weights = (run: string): Buffer => readFileSync(join(dir, run, 'checkpoints', 'pretrain', 'step-000500', 'model.safetensors'));
    expect(weights('sigterm').equals(weights('sigterm-full'))).toBe(true);
  });
});
