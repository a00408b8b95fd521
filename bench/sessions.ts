/**
 * ORT session options for the training session, chosen by measurement: the
 * dim256 model trained by the real trainer under several option sets, in
 * interleaved rounds, on the machine as it is and again with one competing
 * busy process (a child spinning on one core, as another job on a shared
 * 2-core machine would). Each figure is the median step time over all
 * measured steps of all rounds, with the ratio to the runtime's own choice
 * (createSession's defaults).
 *
 * The options are laid over the runtime's (ortHooks.ts; the runtime is not
 * changed); `runtime default` is exactly what `ptr run` uses.
 *
 *   npm run bench -- --only sessions
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/runtime/trainer.js';
import { compileModel, DIM256, describe, makeWorkdir, writeModel } from './models.js';
import { stepTimes, withOrtHooks } from './ortHooks.js';
import { envInt, fmt, median, table } from './util.js';

const ROUNDS = (): number => envInt('BENCH_SESSION_ROUNDS', 2);
const WARMUP = (): number => envInt('BENCH_SESSION_WARMUP', 3);
const STEPS = (): number => envInt('BENCH_SESSION_STEPS', 10);

interface Variant {
  readonly name: string;
  /** Options laid over the runtime's own (null: the runtime's, unchanged). */
  readonly options: Record<string, unknown> | null;
}

const spinning = (on: boolean): Record<string, unknown> => ({ extra: { session: { intra_op: { allow_spinning: on ? '1' : '0' }, inter_op: { allow_spinning: on ? '1' : '0' } } } });

const VARIANTS: readonly Variant[] = [
  { name: 'runtime default', options: null },
  { name: '1 thread', options: { intraOpNumThreads: 1 } },
  { name: '2 threads, spinning', options: { intraOpNumThreads: 2, ...spinning(true) } },
  { name: '2 threads, no spinning', options: { intraOpNumThreads: 2, ...spinning(false) } },
  { name: 'parallel mode, 2 inter-op × 1 intra-op', options: { executionMode: 'parallel', interOpNumThreads: 2, intraOpNumThreads: 1 } },
];

/** Step times (s) of `train` with `options` laid over every session the runtime creates. */
async function measure(run: () => Promise<unknown>, options: Record<string, unknown> | null): Promise<number[]> {
  const { spans } = await withOrtHooks(options ? { createOptions: options } : {}, run);
  return stepTimes(spans, WARMUP(), STEPS());
}

/** A child process spinning on one core until killed. */
function busyProcess(): { stop: () => void } {
  const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  return { stop: () => child.kill('SIGKILL') };
}

export async function runSessions(): Promise<void> {
  const workdir = makeWorkdir();
  try {
    const c = DIM256;
    const m = compileModel(c, workdir);
    const modelDir = writeModel(m, workdir);
    console.log(`training session options, ${c.name} (${describe(c)}): ${ROUNDS()} interleaved rounds of ${STEPS()} measured steps after ${WARMUP()} warm-up steps\n`);
    const rows: string[][] = [];
    for (const condition of ['as it is', 'with one busy process'] as const) {
      const busy = condition === 'with one busy process' ? busyProcess() : null;
      const samples = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
      const loads: number[] = [];
      try {
        for (let r = 0; r < ROUNDS(); r++) {
          for (const v of VARIANTS) {
            const runDir = join(workdir, 'run');
            const steps = await measure(() => train(m.compiled.manifest, { modelDir, runDir, progress: null, stopAfter: WARMUP() + STEPS() + 1, checkpointEvery: 1e9 }), v.options);
            rmSync(runDir, { recursive: true, force: true });
            samples.get(v.name)!.push(...steps);
            loads.push(loadavg()[0]!);
          }
        }
      } finally {
        busy?.stop();
      }
      const base = median(samples.get('runtime default')!);
      for (const v of VARIANTS) {
        const ms = median(samples.get(v.name)!);
        rows.push([condition, v.name, fmt(ms * 1000), `${fmt(ms / base, 2)}x`, `${fmt(Math.min(...loads), 1)}–${fmt(Math.max(...loads), 1)}`]);
      }
    }
    console.log(table(['machine', 'options', 'step ms (median)', '÷ runtime default', 'load average'], rows, 'llrrr'));
    console.log('Below 1 in the ratio column: faster than what the runtime uses now.');
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}
