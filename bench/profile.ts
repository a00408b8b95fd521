/**
 * Where a training step's time goes inside onnxruntime, and where the second
 * core is lost: the dim-256 model trained by the real trainer for a few steps
 * with ORT's profiler switched on (ortHooks.ts: `InferenceSession.create` gets
 * enableProfiling, and `release` ends the profile first), once with one
 * intra-op thread and once with two. Kernel time is summed by ONNX op type and
 * by phase (forward, backward, optimizer: the last word of each node's
 * doc_string), and the two thread counts are set side by side: an op type
 * whose time does not halve is where the second thread does not help. Its
 * step times are not used elsewhere (the profiler slows the step).
 *
 *   npm run bench -- --only profile
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../src/runtime/trainer.js';
import { onnx } from '../targets/onnx/proto.js';
import { compileModel, DIM256, describe, makeWorkdir, writeModel, type CompiledModel } from './models.js';
import { withOrtHooks } from './ortHooks.js';
import { envInt, fmt, pct, table } from './util.js';

const STEPS = (): number => Math.max(2, envInt('BENCH_PROFILE_STEPS', 6));
const THREADS = [1, 2] as const;

interface ProfileEvent {
  readonly cat: string;
  readonly name: string;
  readonly dur: number;
  readonly ts: number;
  readonly args?: { readonly op_name?: string };
}

interface Tally {
  us: number;
  count: number;
}

/** One profiled training run: kernel time per step by op type and by phase (µs), and model_run time per step. */
interface Profile {
  readonly byOp: ReadonlyMap<string, Tally>;
  readonly byPhase: ReadonlyMap<string, Tally>;
  readonly kernelUs: number;
  readonly runUs: number;
  /** Steps counted (the first is left out). */
  readonly counted: number;
}

export async function runProfile(): Promise<void> {
  const workdir = makeWorkdir();
  try {
    const c = DIM256;
    const m = compileModel(c, workdir);
    const modelDir = writeModel(m, workdir);
    const profiles: Profile[] = [];
    for (const threads of THREADS) profiles.push(await profileTraining(m, modelDir, workdir, threads));
    const [one, two] = profiles as [Profile, Profile];
    const perStep = (p: Profile, t: Tally | undefined): number => (t ? t.us / 1000 / p.counted : 0);
    const compare = (key: (p: Profile) => ReadonlyMap<string, Tally>, limit: number): string[][] => {
      const rows = [...key(two).entries()].sort((a, b) => b[1].us - a[1].us);
      return rows.slice(0, limit).map(([name, t]) => {
        const ms1 = perStep(one, key(one).get(name));
        const ms2 = perStep(two, t);
        return [name, fmt(t.count / two.counted, 0), fmt(ms1, 1), fmt(ms2, 1), `${fmt(ms1 / ms2, 2)}x`, pct(t.us / two.kernelUs)];
      });
    };
    console.log(`ORT profile of train_step, ${c.name} (${describe(c)}), steps 2–${STEPS()}, at 1 and 2 intra-op threads: kernel time by op type\n`);
    const header = ['kernels/step', 'ms/step 1 thread', 'ms/step 2 threads', '1 ÷ 2', 'share at 2 threads'];
    console.log(table(['op', ...header], compare((p) => p.byOp, 15)));
    const more = two.byOp.size - 15;
    if (more > 0) console.log(`(${more} more op types)`);
    console.log("\nthe same kernel time by phase (the last word of each ONNX node's doc_string; nodes ORT fused or renamed are counted apart):\n");
    console.log(table(['phase', ...header], compare((p) => p.byPhase, 10)));
    for (const [threads, p] of [
      [1, one],
      [2, two],
    ] as const) {
      console.log(`\n${threads} thread${threads > 1 ? 's' : ''}: kernel time ${fmt(p.kernelUs / 1000 / p.counted, 1)} ms/step of ${fmt(p.runUs / 1000 / p.counted, 1)} ms/step in model_run (the rest: ORT scheduling, allocation, copies between kernels).`);
    }
    console.log(`model_run 1 thread ÷ 2 threads: ${fmt(one.runUs / two.runUs, 2)}x`);
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}

/** Trains `m` for STEPS() steps with the profiler on and `threads` intra-op threads; reads the profile back. */
async function profileTraining(m: CompiledModel, modelDir: string, workdir: string, threads: number): Promise<Profile> {
  const prefix = join(workdir, `ort-profile-${threads}t`);
  await withOrtHooks({ createOptions: { enableProfiling: true, profileFilePrefix: prefix }, beforeRelease: (session) => session.endProfiling() }, () =>
    train(m.compiled.manifest, { modelDir, runDir: join(workdir, `run-${threads}t`), progress: null, stopAfter: STEPS(), checkpointEvery: 1e9, threads }),
  );
  const file = readdirSync(workdir).find((f) => f.startsWith(`ort-profile-${threads}t`) && f.endsWith('.json'));
  if (!file) throw new Error('onnxruntime wrote no profile');
  const events = JSON.parse(readFileSync(join(workdir, file), 'utf8')) as ProfileEvent[];
  // The first step (ORT allocates and plans memory then) is left out.
  const modelRuns = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  if (modelRuns.length !== STEPS()) throw new Error(`expected ${STEPS()} model_run events in the profile, found ${modelRuns.length}`);
  const firstEnd = modelRuns[0]!.ts + modelRuns[0]!.dur;
  const phaseOf = nodePhases(m.compiled.files.find((f) => f.name === m.compiled.manifest.graphs['train_step']!.file)!.bytes);
  const byOp = new Map<string, Tally>();
  const byPhase = new Map<string, Tally>();
  const add = (map: Map<string, Tally>, key: string, us: number): void => {
    const t = map.get(key) ?? { us: 0, count: 0 };
    t.us += us;
    t.count++;
    map.set(key, t);
  };
  let kernelUs = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < firstEnd) continue;
    add(byOp, e.args?.op_name ?? '?', e.dur);
    add(byPhase, phaseOf.get(e.name.slice(0, -'_kernel_time'.length)) ?? '(fused or renamed by ORT)', e.dur);
    kernelUs += e.dur;
  }
  const runUs = modelRuns.slice(1).reduce((n, e) => n + e.dur, 0);
  return { byOp, byPhase, kernelUs, runUs, counted: STEPS() - 1 };
}

/** Each ONNX node's phase (forward, backward, optimizer: the last word of its doc_string), by node name. */
function nodePhases(model: Uint8Array): Map<string, string> {
  const proto = onnx.ModelProto.decode(model);
  const out = new Map<string, string>();
  for (const n of proto.graph?.node ?? []) out.set(n.name ?? '', (n.docString ?? '').split(' ').pop() || '(no provenance)');
  return out;
}
