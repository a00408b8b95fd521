/**
 * The kill-anywhere soak (`npm run soak`, not part of the test suite): `ptr run`
 * on a small recipe is SIGKILLed again and again — at random moments, and the
 * instant a checkpoint folder starts being written — each time resumed with
 * `--resume`, until at least KILLS kills have landed; then the last resume runs to
 * the end. It passes when the final weights and optimizer state are byte-identical
 * to an uninterrupted run's, every step's loss is the uninterrupted one and is in
 * metrics.jsonl exactly once, and no temporary file or folder is left.
 *
 *   npm run soak                  # 60 kills
 *   npm run soak -- --kills 200 --seed 7
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readMetrics } from '../src/runtime/metrics.js';
import { Prng } from '../src/runtime/prng.js';
import { isLeftoverTemp } from '../src/runtime/runFolder.js';

const BIN = resolve('bin/ptr.js');
const STEPS = 400;

interface Options {
  readonly kills: number;
  readonly seed: number;
}

function parseArgs(argv: readonly string[]): Options {
  const value = (name: string, fallback: number): number => {
    const i = argv.indexOf(name);
    const n = i >= 0 ? Number(argv[i + 1]) : fallback;
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer`);
    return n;
  };
  return { kills: value('--kills', 60), seed: value('--seed', 1) };
}

/** What was running when a kill landed. */
type Moment = 'start-up' | 'training' | 'checkpoint write' | 'after the end';

async function main(): Promise<void> {
  const { kills: wanted, seed } = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'ptr-soak-'));
  cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
  const recipe = join(dir, 'tiny.pt-recipe');
  // Checkpoints every 10 steps: many writes to land in.
  writeFileSync(recipe, readFileSync(recipe, 'utf8').replace('steps     = 12', `steps     = ${STEPS}`).replace('eval every 4', 'eval every 10'));

  const began = performance.now();
  const full = spawnSync(process.execPath, [BIN, 'run', 'tiny.pt-recipe', '--out', 'full'], { cwd: dir, encoding: 'utf8' });
  if (full.status !== 0) throw new Error(`the uninterrupted run failed:\n${full.stderr}`);
  const fullSeconds = (performance.now() - began) / 1000;

  const prng = new Prng(seed);
  const moments = new Map<Moment, number>();
  let kills = 0;
  let runs = 0;
  const soakBegan = performance.now();
  for (let attempt = 0; kills < wanted; attempt++) {
    runs++;
    const args = ['run', 'tiny.pt-recipe', '--out', 'soak', ...(attempt > 0 ? ['--resume'] : [])];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    // Half the kills at a random moment of a typical run, half the instant a checkpoint folder appears.
    const atCheckpoint = attempt % 2 === 1;
    const delay = 50 + prng.uniform() * fullSeconds * 1000;
    const moment = await new Promise<Moment | null>((decide) => {
      let settled = false;
      const settle = (m: Moment | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        watcher?.close();
        decide(m);
      };
      const timer = setTimeout(() => settle(momentOf(dir, stderr)), atCheckpoint ? fullSeconds * 3000 : delay);
      let watcher: ReturnType<typeof watch> | null = null;
      if (atCheckpoint) {
        const folder = join(dir, 'soak', 'checkpoints', 'pretrain');
        mkdirSync(folder, { recursive: true });
        // The first checkpoint write after a random number of them.
        let skip = Math.floor(prng.uniform() * 5);
        watcher = watch(folder, (_event, name) => {
          if (name && /^\.step-\d+\.tmp-\d+$/.test(name.toString()) && skip-- <= 0) settle('checkpoint write');
        });
      }
      void exited.then(() => settle(null));
    });
    if (moment === null) {
      // It ended before the kill: finished, or failed.
      const code = await exited;
      if (code !== 0) throw new Error(`run ${runs} (${args.join(' ')}) exited ${code}:\n${stderr}`);
      // Finished before the soak had its kills: start over from scratch.
      rmSync(join(dir, 'soak'), { recursive: true, force: true });
      attempt = -1;
      continue;
    }
    child.kill('SIGKILL');
    await exited;
    kills++;
    moments.set(moment, (moments.get(moment) ?? 0) + 1);
  }
  // The last resume runs to the end.
  const last = spawnSync(process.execPath, [BIN, 'run', 'tiny.pt-recipe', '--out', 'soak', '--resume'], { cwd: dir, encoding: 'utf8' });
  runs++;
  if (last.status !== 0) throw new Error(`the final resume failed:\n${last.stderr}`);
  const soakSeconds = (performance.now() - soakBegan) / 1000;

  const step = `step-${String(STEPS).padStart(6, '0')}`;
  const bytes = (run: string, file: string): Buffer => readFileSync(join(dir, run, 'checkpoints', 'pretrain', step, file));
  const identical = ['model.safetensors', 'optimizer.safetensors'].every((f) => bytes('soak', f).equals(bytes('full', f)));
  const losses = (run: string): Map<number, number[]> => {
    const byStep = new Map<number, number[]>();
    for (const m of readMetrics(join(dir, run, 'metrics.jsonl'))) if (m['split'] === undefined) byStep.set(m.step, [...(byStep.get(m.step) ?? []), m['loss'] as number]);
    return byStep;
  };
  const soakLosses = losses('soak');
  const fullLosses = losses('full');
  const duplicated = [...soakLosses.values()].filter((l) => l.length > 1).length;
  const sameLosses = fullLosses.size === STEPS && [...fullLosses].every(([s, l]) => soakLosses.get(s)?.length === 1 && soakLosses.get(s)![0] === l[0]);
  const leftovers = listLeftovers(join(dir, 'soak'));

  const row = (k: string, v: string | number): void => console.log(`${k.padEnd(34)} ${v}`);
  console.log(`kill-anywhere soak: ${STEPS} steps of the tiny recipe, a checkpoint every 10 steps, seed ${seed}`);
  row('SIGKILLs', kills);
  for (const [m, n] of [...moments].sort()) row(`  during ${m}`, n);
  row('ptr run invocations', runs);
  row('uninterrupted run', `${fullSeconds.toFixed(1)} s`);
  row('soak', `${soakSeconds.toFixed(1)} s`);
  row('final weights and optimizer state', identical ? 'byte-identical' : 'DIFFERENT');
  row('losses of every step', sameLosses ? 'identical, each step once' : 'DIFFERENT');
  row('steps recorded twice', duplicated);
  row('leftover temporary files', leftovers.length ? leftovers.join(', ') : 0);
  const ok = identical && sameLosses && duplicated === 0 && leftovers.length === 0;
  if (ok) rmSync(dir, { recursive: true, force: true });
  else console.log(`kept for inspection: ${dir}`);
  process.exitCode = ok ? 0 : 1;
}

/** Where a run is when killed at a random moment, from what it has written. */
function momentOf(dir: string, stderr: string): Moment {
  const folder = join(dir, 'soak', 'checkpoints', 'pretrain');
  if (existsSync(folder) && readdirSync(folder).some((f) => f.startsWith('.step-'))) return 'checkpoint write';
  if (/stage pretrain: steps|already complete/.test(stderr)) return 'after the end';
  return /step \d+/.test(stderr) ? 'training' : 'start-up';
}

function listLeftovers(root: string): string[] {
  const found: string[] = [];
  const visit = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (isLeftoverTemp(e.name) || e.name.endsWith('.tmp')) found.push(path);
      else if (e.isDirectory()) visit(path);
    }
  };
  visit(root);
  return found;
}

await main();
