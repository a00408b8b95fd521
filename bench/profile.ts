/**
 * Where a training step's time goes inside onnxruntime: the dim-256 model
 * trained by the real trainer for a few steps with ORT's profiler switched on
 * (`InferenceSession.create` is wrapped to add enableProfiling, and `release`
 * to end the profile first), kernel time summed by ONNX op type. It explains
 * the throughput figures (which ops take the time that is not MatMul); its
 * step times are not used elsewhere.
 *
 *   npm run bench -- --only profile
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ort } from '../src/runtime/ort.js';
import { train } from '../src/runtime/trainer.js';
import { compileModel, DIM256, describe, makeWorkdir, writeModel } from './models.js';
import { envInt, fmt, pct, table } from './util.js';

const STEPS = (): number => Math.max(2, envInt('BENCH_PROFILE_STEPS', 6));

interface ProfileEvent {
  readonly cat: string;
  readonly name: string;
  readonly dur: number;
  readonly ts: number;
  readonly args?: { readonly op_name?: string };
}

export async function runProfile(): Promise<void> {
  const workdir = makeWorkdir();
  try {
    const c = DIM256;
    const m = compileModel(c, workdir);
    const modelDir = writeModel(m, workdir);
    const prefix = join(workdir, 'ort-profile');
    type Fn = (this: unknown, ...args: unknown[]) => unknown;
    const factory = ort.InferenceSession as unknown as { create: Fn; prototype: { release: Fn; endProfiling: Fn } };
    const create = factory.create;
    const release = factory.prototype.release;
    factory.create = function (this: unknown, ...args: unknown[]): unknown {
      if (args.length !== 2) throw new Error('profile: expected InferenceSession.create(model, options)');
      return create.call(this, args[0], { ...(args[1] as object), enableProfiling: true, profileFilePrefix: prefix });
    };
    factory.prototype.release = function (this: unknown): unknown {
      (this as { endProfiling: Fn }).endProfiling();
      return release.call(this);
    };
    try {
      await train(m.compiled.manifest, { modelDir, runDir: join(workdir, 'run'), progress: null, stopAfter: STEPS(), checkpointEvery: 1e9 });
    } finally {
      factory.create = create;
      factory.prototype.release = release;
    }
    const file = readdirSync(workdir).find((f) => f.startsWith('ort-profile') && f.endsWith('.json'));
    if (!file) throw new Error('onnxruntime wrote no profile');
    const events = JSON.parse(readFileSync(join(workdir, file), 'utf8')) as ProfileEvent[];
    // The first step (ORT allocates and plans memory then) is left out.
    const modelRuns = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
    if (modelRuns.length !== STEPS()) throw new Error(`expected ${STEPS()} model_run events in the profile, found ${modelRuns.length}`);
    const firstEnd = modelRuns[0]!.ts + modelRuns[0]!.dur;
    const counted = STEPS() - 1;
    const runs = modelRuns.slice(1).reduce((n, e) => n + e.dur, 0);
    const byOp = new Map<string, { us: number; count: number }>();
    let kernel = 0;
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < firstEnd) continue;
      const op = e.args?.op_name ?? '?';
      const entry = byOp.get(op) ?? { us: 0, count: 0 };
      entry.us += e.dur;
      entry.count++;
      byOp.set(op, entry);
      kernel += e.dur;
    }
    const rows = [...byOp.entries()].sort((a, b) => b[1].us - a[1].us);
    console.log(`ORT profile of train_step, ${c.name} (${describe(c)}), steps 2–${STEPS()}: kernel time by op type\n`);
    console.log(
      table(
        ['op', 'kernels/step', 'ms/step', 'share of kernel time'],
        rows.slice(0, 15).map(([op, e]) => [op, fmt(e.count / counted, 0), fmt(e.us / 1000 / counted, 1), pct(e.us / kernel)]),
      ),
    );
    const rest = rows.slice(15).reduce((n, [, e]) => n + e.us, 0);
    if (rest > 0) console.log(`(${rows.length - 15} more op types: ${pct(rest / kernel)})`);
    console.log(`\nkernel time ${fmt(kernel / 1000 / counted, 1)} ms/step of ${fmt(runs / 1000 / counted, 1)} ms/step in model_run (the rest: ORT scheduling, allocation, copies between kernels).`);
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}
