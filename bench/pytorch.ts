/**
 * ptr against PyTorch eager, and one thread against two, on the same models.
 *
 * For each model (quickstart, dim256) and each thread count (1, 2), ptr's
 * trainer and a PyTorch process (bench/torch_step.py: the same architecture,
 * loss, AdamW, clipping and schedule, eager mode) train a few warm-up steps and
 * then measured steps; the four runs are repeated in interleaved rounds
 * (ptr 1, torch 1, ptr 2, torch 2, then again) so that both see the same
 * machine load, and each figure is the median over all measured steps of all
 * rounds. The ratios are what to read: torch ÷ ptr (above 1: ptr is faster)
 * and 1 thread ÷ 2 threads (2 would be perfect scaling).
 *
 * PyTorch is Debian's python3-torch (1.13) run by /usr/bin/python3; it should
 * use OpenBLAS (apt-get install libopenblas0-pthread): with the reference BLAS
 * it is an order of magnitude slower and no peer. When torch cannot be
 * imported, the torch column is left out and ptr's thread scaling is still
 * measured.
 *
 *   npm run bench -- --only pytorch
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { train } from '../src/runtime/trainer.js';
import { compileModel, DIM256, describe, makeWorkdir, QUICKSTART, writeModel, type ModelConfig } from './models.js';
import { stepTimes, withOrtHooks } from './ortHooks.js';
import { envInt, fmt, median, table } from './util.js';

const ROUNDS = (): number => envInt('BENCH_PEER_ROUNDS', 2);
const WARMUP = (): number => envInt('BENCH_PEER_WARMUP', 3);
const STEPS = (): number => envInt('BENCH_PEER_STEPS', 10);
const PYTHON = process.env['BENCH_PYTHON'] ?? '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../bench/torch_step.py', import.meta.url));
const THREADS = [1, 2] as const;

interface TorchReport {
  readonly steps: readonly number[];
  readonly params: number;
  readonly threads: number;
  readonly torch: string;
  readonly blas: string;
}

/** Whether PyTorch can be imported, and its version and BLAS; null with the reason when not. */
function probeTorch(): { version: string } | { missing: string } {
  try {
    const out = execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { version: out.trim() };
  } catch (e) {
    const reason = (e as { stderr?: string }).stderr?.trim().split('\n').pop() ?? (e as Error).message;
    return { missing: reason };
  }
}

function runTorch(c: ModelConfig, vocab: number, threads: number): TorchReport {
  const config = { vocab, dim: c.dim, layers: c.layers, heads: c.heads, ctx: c.ctx, batch: c.batch, threads, warmup: WARMUP(), steps: STEPS() };
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const out = execFileSync(PYTHON, [SCRIPT, JSON.stringify(config)], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop()!) as TorchReport;
}

/** Step times (seconds) of ptr's trainer with `threads` intra-op threads: from one session.run's start to the next's. */
async function runPtr(manifest: Parameters<typeof train>[0], modelDir: string, runDir: string, threads: number): Promise<number[]> {
  try {
    const { spans } = await withOrtHooks({}, () => train(manifest, { modelDir, runDir, progress: null, stopAfter: WARMUP() + STEPS() + 1, checkpointEvery: 1e9, threads }));
    return stepTimes(spans, WARMUP(), STEPS());
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}

export async function runPytorch(): Promise<void> {
  const torch = probeTorch();
  const workdir = makeWorkdir();
  try {
    if ('missing' in torch) {
      console.log(`PyTorch is not available (${PYTHON}: ${torch.missing}); measuring ptr's thread scaling only. For the PyTorch column: apt-get install python3-torch libopenblas0-pthread`);
    }
    console.log(`${ROUNDS()} interleaved rounds of ${STEPS()} measured steps after ${WARMUP()} warm-up steps, at 1 and 2 threads; medians over all measured steps\n`);
    const rows: string[][] = [];
    const notes: string[] = [];
    for (const c of [QUICKSTART, DIM256]) {
      const m = compileModel(c, workdir);
      const modelDir = writeModel(m, workdir);
      const vocab = m.plan.params.find((p) => p.name === 'embed.token.table')?.shape[0];
      if (vocab === undefined) throw new Error(`${c.name}: no embed.token.table parameter to read the vocabulary size from`);
      const ptr = new Map<number, number[]>(THREADS.map((t) => [t, []]));
      const peer = new Map<number, number[]>(THREADS.map((t) => [t, []]));
      const loads: number[] = [];
      for (let r = 0; r < ROUNDS(); r++) {
        for (const t of THREADS) {
          ptr.get(t)!.push(...(await runPtr(m.compiled.manifest, modelDir, join(workdir, c.name, 'run'), t)));
          loads.push(loadavg()[0]!);
          if ('version' in torch) {
            const report = runTorch(c, vocab, t);
            peer.get(t)!.push(...report.steps);
            if (r === 0 && t === 1) notes.push(`${c.name}: torch ${report.torch}, ${fmt(report.params / 1e6, 2)}M parameters, BLAS ${report.blas}${/openblas/i.test(report.blas) ? '' : ' (not OpenBLAS: torch is no peer this way)'}`);
          }
        }
      }
      for (const t of THREADS) {
        const p = median(ptr.get(t)!);
        const q = 'version' in torch ? median(peer.get(t)!) : NaN;
        rows.push([`${c.name} (${describe(c)})`, String(t), fmt(p * 1000), fmt((c.batch * c.ctx) / p, 0), Number.isNaN(q) ? '—' : fmt(q * 1000), Number.isNaN(q) ? '—' : `${fmt(q / p, 2)}x`]);
      }
      const scale = (xs: Map<number, number[]>): string => `${fmt(median(xs.get(1)!) / median(xs.get(2)!), 2)}x`;
      notes.push(`${c.name}: 1 thread ÷ 2 threads: ptr ${scale(ptr)}${'version' in torch ? `, torch ${scale(peer)}` : ''}; load average during the rounds ${fmt(Math.min(...loads), 2)}–${fmt(Math.max(...loads), 2)}`);
    }
    console.log(table(['model', 'threads', 'ptr step ms', 'ptr tokens/s', 'torch step ms', 'torch ÷ ptr'], rows));
    console.log(`\n${notes.join('\n')}`);
    console.log('torch ÷ ptr above 1: ptr is faster. Read the figures with the load average: above ~1.5 on 2 cores, another process shares them and the 2-thread figures suffer most.');
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}
