/**
 * Peak memory of a training process against the analytic minimum.
 *
 * Each model is compiled here, then trained for a few steps in a child
 * process (bench/memory-child.ts, started through /bin/sh: see `child`) that
 * reports its peak RSS (`process.resourceUsage().maxRSS`). The baseline is the peak RSS of an idle
 * child that loaded the same modules (onnxruntime-node included) and created,
 * ran and released one tiny session, so ORT's own start-up memory is
 * subtracted; a child that only loaded the modules is measured too. Each
 * child runs BENCH_MEMORY_RUNS times; figures are medians.
 *
 * Minimum = params + grads + AdamW state (2 × params) + activations, where
 * activations = the bytes of every forward value that a backward node reads
 * (each value once; forward = scope starting with neither `grad` nor
 * `optimizer`, in the optimised train_step graph). A looser figure, every
 * output of every forward node, is shown too.
 *
 *   npm run bench -- --only memory
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memoryEstimate } from './graph-stats.js';
import { compileModel, DIM256, makeWorkdir, QUICKSTART, writeModel, type ModelConfig } from './models.js';
import { envInt, fmt, median, mib, table } from './util.js';

const STEPS = (): number => envInt('BENCH_MEMORY_STEPS', 8);
const RUNS = (): number => envInt('BENCH_MEMORY_RUNS', 3);
const CHILD = fileURLToPath(new URL('./memory-child.js', import.meta.url));

interface ChildReport {
  readonly maxRssKiB: number;
  readonly steps?: number;
}

/**
 * Runs the child through `sh -c 'node …; exit $?'`, so that node is forked by a
 * small shell rather than by this process. Linux carries the peak RSS of the
 * memory a process had before exec into ru_maxrss, and a child forked straight
 * from this process starts with a copy of this process's memory: its maxRSS
 * would report this process's size (hundreds of MiB after the training part)
 * instead of its own.
 */
function child(args: readonly string[]): ChildReport {
  const out = execFileSync('/bin/sh', ['-c', '"$0" "$@"; exit $?', process.execPath, CHILD, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const line = out.trim().split('\n').pop()!;
  return JSON.parse(line) as ChildReport;
}

function peakBytes(args: readonly string[]): number {
  const peaks: number[] = [];
  for (let i = 0; i < RUNS(); i++) peaks.push(child(args).maxRssKiB * 1024);
  return median(peaks);
}

export function runMemory(): void {
  const workdir = makeWorkdir();
  try {
    console.log(`4. peak RSS of a training process (${STEPS()} steps, in a child process) vs the analytic minimum; median of ${RUNS()} children each\n`);
    const loaded = peakBytes(['loaded']);
    const idle = peakBytes(['idle']);
    const rows: string[][] = [];
    const loose: string[] = [];
    for (const c of [QUICKSTART, DIM256] as ModelConfig[]) {
      const m = compileModel(c, workdir);
      const modelDir = writeModel(m, workdir);
      const est = memoryEstimate(m.plan, m.compiled.graphs['train_step']!);
      const peak = peakBytes(['train', modelDir, join(workdir, c.name, 'run'), String(STEPS())]);
      rmSync(join(workdir, c.name, 'run'), { recursive: true, force: true });
      const base = est.params + est.grads + est.optimizerState;
      const minimum = base + est.activationsRead;
      const used = peak - idle;
      rows.push([c.name, mib(est.params), mib(est.grads), mib(est.optimizerState), mib(est.activationsRead), mib(minimum), mib(peak), mib(used), `${fmt(used / minimum, 2)}x`]);
      loose.push(`  ${c.name}: every forward output ${mib(est.activationsAll)} MiB → minimum ${mib(base + est.activationsAll)} MiB, peak − idle ÷ that = ${fmt(used / (base + est.activationsAll), 2)}x`);
    }
    console.log(`idle node process with onnxruntime-node loaded: ${mib(loaded)} MiB peak RSS; after one tiny session (the baseline below): ${mib(idle)} MiB\n`);
    console.log(table(['model', 'params MiB', 'grads', 'AdamW state', 'activations', 'minimum', 'peak RSS', 'peak − idle', '÷ minimum'], rows));
    console.log('\nactivations: forward values read by the backward pass (optimised train_step graph). With every forward output instead:');
    console.log(loose.join('\n'));
    console.log('The step is functional: it also returns new params and AdamW state (3 × params) while the inputs are still alive; the minimum above does not count them.');
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}
