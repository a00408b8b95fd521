/**
 * The training loop for a compiled train stage. Each step is one
 * `session.run` of train_step.onnx; its new parameters and optimizer state
 * are fed straight back as the next step's inputs (ORT tensors, no copies).
 * Batches and dropout seeds are pure functions of (seed, step), so a run
 * resumed from a checkpoint computes exactly the losses it would have.
 */
import { join } from 'node:path';
import type { Manifest } from '../../targets/onnx/compile.js';
import { checkpointTensorLoader, latestCheckpointDir, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { openStageData } from './datasets.js';
import { initialParams } from './init.js';
import { filterMetrics, MetricsWriter } from './metrics.js';
import { createSession, ort, type Device, type OrtSession, type OrtTensor } from './ort.js';
import { createProgress } from './progress.js';
import { UserError } from './errors.js';
import { sizeOf } from '../ir/tensor.js';

export interface TrainOptions {
  /** Folder holding the compiled models (manifest.json's files). */
  readonly modelDir: string;
  /** Run folder: checkpoints/, metrics.jsonl. */
  readonly runDir: string;
  readonly device?: Device;
  readonly resume?: boolean;
  /** Steps between checkpoints (default: the eval interval, else 100); the last step is always saved. */
  readonly checkpointEvery?: number;
  /**
   * Steps per session.run (default 1): above 1 the Loop model runs that many steps
   * at once, so parameters cross to the device and back once per run (for CUDA).
   */
  readonly stepsPerRun?: number;
  /** Stop after this step as if killed (tests of resume). */
  readonly stopAfter?: number;
  readonly threads?: number;
  /** Progress output (default stderr); null for none. */
  readonly progress?: NodeJS.WritableStream | null;
  readonly progressEvery?: number;
}

export interface TrainResult {
  readonly firstStep: number;
  readonly lastStep: number;
  /** Training loss of each step run here, from firstStep. */
  readonly losses: readonly number[];
  readonly evals: readonly { readonly step: number; readonly loss: number }[];
  readonly tokensPerSec: number;
  /** Seconds inside session.run, and in total, for the steps run here. */
  readonly runSeconds: number;
  readonly totalSeconds: number;
  readonly checkpoint: string | null;
}

/** The loss became NaN or infinite: the run stops, the last good checkpoint stays. */
export class DivergedError extends UserError {}

function floatTensor(data: Float32Array, shape: readonly number[]): OrtTensor {
  return new ort.Tensor('float32', data, [...shape]);
}

/** Batches of consecutive steps stacked on a new leading axis: `batch.F` [rows, ...] → `batches.F` [n, rows, ...]. */
function stackBatches(batches: readonly Record<string, OrtTensor>[]): Record<string, OrtTensor> {
  const out: Record<string, OrtTensor> = {};
  for (const name of Object.keys(batches[0]!)) {
    const parts = batches.map((b) => b[name]!);
    const first = parts[0]!;
    const size = (first.data as ArrayLike<unknown>).length;
    const dims = [parts.length, ...first.dims];
    const key = name.replace(/^batch\./, 'batches.');
    if (first.type === 'int64') {
      const data = new BigInt64Array(size * parts.length);
      parts.forEach((p, i) => data.set(p.data as BigInt64Array, i * size));
      out[key] = new ort.Tensor('int64', data, dims);
    } else {
      const data = new Float32Array(size * parts.length);
      parts.forEach((p, i) => data.set(p.data as Float32Array, i * size));
      out[key] = new ort.Tensor('float32', data, dims);
    }
  }
  return out;
}

function int64Scalar(v: number): OrtTensor {
  return new ort.Tensor('int64', BigInt64Array.of(BigInt(v)), []);
}

export async function train(manifest: Manifest, options: TrainOptions): Promise<TrainResult> {
  const device = options.device ?? 'cpu';
  const session = await createSession(join(options.modelDir, manifest.graphs.train_step.file), device, options.threads);
  const evalSession = manifest.graphs.eval ? await createSession(join(options.modelDir, manifest.graphs.eval.file), device, options.threads, true) : null;
  const loopSession = (options.stepsPerRun ?? 1) > 1 ? await createSession(join(options.modelDir, manifest.graphs.train_loop.file), device, options.threads) : null;
  try {
    return await loop(manifest, options, session, evalSession, loopSession);
  } finally {
    await session.release();
    await evalSession?.release();
    await loopSession?.release();
  }
}

async function loop(manifest: Manifest, options: TrainOptions, session: OrtSession, evalSession: OrtSession | null, loopSession: OrtSession | null): Promise<TrainResult> {
  const data = openStageData(manifest.dataset, manifest.seed);
  // `eval every N on corpus.val` reads the val split of the file already loaded for training.
  const evalSpec = manifest.evalDataset;
  const sameFile = evalSpec && JSON.stringify({ ...evalSpec, part: null }) === JSON.stringify({ ...manifest.dataset, part: null });
  const evalData = evalSpec ? (sameFile ? data : openStageData(evalSpec, manifest.seed)) : null;
  const B = manifest.batchSize;
  const T = manifest.dataset.seqLen!;
  // Only the trained model's parameters are checkpointed; frozen models come from their own stages' checkpoints.
  const trained = manifest.params.filter((p) => p.model === manifest.model);

  // Parameters and optimizer state: from the latest checkpoint when resuming, else fresh.
  const params = initialParams(manifest.params, manifest.seed, checkpointTensorLoader(options.runDir));
  let state = new Map<string, Float32Array>();
  let start = 0;
  const previous = options.resume ? latestCheckpointDir(options.runDir, manifest.stage) : null;
  if (previous) {
    const ck = loadCheckpoint(previous, trained, manifest.state);
    for (const [k, v] of ck.params) params.set(k, v);
    state = ck.state;
    start = ck.trainer.step;
  } else {
    for (const s of manifest.state) state.set(s.input, new Float32Array(sizeOf(s.shape)));
  }

  const feeds: Record<string, OrtTensor> = {};
  for (const p of manifest.params) feeds[p.input] = floatTensor(params.get(p.input)!, p.shape);
  for (const s of manifest.state) feeds[s.input] = floatTensor(state.get(s.input)!, s.shape);
  const trainInputs = new Set(manifest.graphs.train_step.inputs.map((i) => i.name));
  const evalInputs = new Set(manifest.graphs.eval?.inputs.map((i) => i.name) ?? []);
  const loopInputs = manifest.graphs.train_loop.inputs.map((i) => i.name);

  const metricsFile = join(options.runDir, 'metrics.jsonl');
  // A resumed run recomputes the steps after its checkpoint; their old records go.
  if (previous) filterMetrics(metricsFile, (r) => r.stage !== manifest.stage || r.step <= start);
  const metrics = new MetricsWriter(metricsFile);
  const checkpointEvery = options.checkpointEvery ?? manifest.evalEvery ?? 100;
  const last = Math.min(manifest.steps, options.stopAfter ?? manifest.steps);
  const progress = options.progress === null ? null : createProgress({ stage: manifest.stage, total: manifest.steps, stream: options.progress, every: options.progressEvery });
  const losses: number[] = [];
  const evals: { step: number; loss: number }[] = [];
  let lastCheckpoint: string | null = previous;
  let runSeconds = 0;
  const began = performance.now();

  const snapshot = (step: number, complete: boolean): string => {
    const values = new Map<string, Float32Array>();
    for (const p of trained) values.set(p.input, feeds[p.input]!.data as Float32Array);
    const stateValues = new Map<string, Float32Array>();
    for (const s of manifest.state) stateValues.set(s.input, feeds[s.input]!.data as Float32Array);
    const trainer: TrainerState = { stage: manifest.stage, step, steps: manifest.steps, seed: manifest.seed, rng: { scheme: 'seed-and-step', seed: manifest.seed }, complete };
    return saveCheckpoint(options.runDir, trainer, trained, values, manifest.state, stateValues);
  };

  const evaluate = async (step: number): Promise<void> => {
    if (!evalSession || !evalData) return;
    const batches = evalData.valBatches(B);
    if (batches.length === 0) throw new Error(`dataset ${manifest.evalDataset!.name}: the val split holds less than one batch of ${B}`);
    let sum = 0;
    for (const batch of batches) {
      const evalFeeds: Record<string, OrtTensor> = {};
      for (const name of evalInputs) evalFeeds[name] = batch[name] ?? feeds[name]!;
      const out = await evalSession.run(evalFeeds);
      sum += Number((out['loss']!.data as Float32Array)[0]);
    }
    const loss = sum / batches.length;
    evals.push({ step, loss });
    metrics.write({ stage: manifest.stage, step, split: 'val', loss });
    progress?.log(`${manifest.stage}  step ${step}  val loss ${loss.toFixed(4)}`);
  };

  const K = Math.max(1, options.stepsPerRun ?? 1);
  const rows = B * manifest.gradAccum;
  /** Runs steps first..first+n-1 (one session.run either way); returns each step's loss, lr and gradient norm. */
  const runSteps = async (first: number, n: number): Promise<{ loss: number; lr: number; gradNorm: number }[]> => {
    const t0 = performance.now();
    if (!loopSession) {
      Object.assign(feeds, data.trainBatch(first - 1, rows));
      feeds['step'] = int64Scalar(first);
      feeds['seed'] = int64Scalar(manifest.seed * 1000003 + first);
      const run: Record<string, OrtTensor> = {};
      for (const name of trainInputs) run[name] = feeds[name]!;
      const out = await session.run(run);
      runSeconds += (performance.now() - t0) / 1000;
      for (const [output, input] of Object.entries(manifest.feedback)) feeds[input] = out[output]!;
      const scalar = (name: string): number => Number((out[name]!.data as Float32Array)[0]);
      return [{ loss: scalar('loss'), lr: scalar('lr'), gradNorm: scalar('grad_norm') }];
    }
    const run: Record<string, OrtTensor> = { steps: int64Scalar(n), step0: int64Scalar(first), seed_base: int64Scalar(manifest.seed * 1000003) };
    for (const name of loopInputs) if (feeds[name]) run[name] = feeds[name]!;
    for (const input of Object.values(manifest.feedback)) run[`init.${input}`] = feeds[input]!;
    Object.assign(run, stackBatches(Array.from({ length: n }, (_, i) => data.trainBatch(first - 1 + i, rows))));
    const out = await loopSession.run(run);
    runSeconds += (performance.now() - t0) / 1000;
    for (const input of Object.values(manifest.feedback)) feeds[input] = out[`final.${input}`]!;
    const all = (name: string): Float32Array => out[`all.${name}`]!.data as Float32Array;
    return Array.from({ length: n }, (_, i) => ({ loss: all('loss')[i]!, lr: all('lr')[i]!, gradNorm: all('grad_norm')[i]! }));
  };
  /** Steps until the next eval, checkpoint or the end, at most K. */
  const chunk = (step: number): number => {
    let n = Math.min(K, last - step + 1);
    for (const every of [manifest.evalEvery, checkpointEvery]) if (every) n = Math.min(n, every - ((step - 1) % every));
    return n;
  };

  try {
    for (let first = start + 1; first <= last; ) {
      const results = await runSteps(first, chunk(first));
      for (const [i, r] of results.entries()) {
        const step = first + i;
        if (!Number.isFinite(r.loss)) {
          const kept = lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint}` : 'no checkpoint was written yet';
          throw new DivergedError(`stage ${manifest.stage}: the loss is ${r.loss} at step ${step}; stopping (${kept}). Try a lower learning rate or clip_norm.`);
        }
        losses.push(r.loss);
        const elapsed = (performance.now() - began) / 1000;
        const tokensPerSec = ((step - start) * rows * T) / elapsed;
        metrics.write({ stage: manifest.stage, step, loss: r.loss, lr: r.lr, grad_norm: r.gradNorm, tokens_per_sec: Math.round(tokensPerSec) });
        progress?.update(step, { loss: r.loss, tokensPerSec });
      }
      const step = first + results.length - 1;
      first = step + 1;
      if (manifest.evalEvery && step % manifest.evalEvery === 0) await evaluate(step);
      if (step % checkpointEvery === 0 || step === manifest.steps) lastCheckpoint = snapshot(step, step === manifest.steps);
    }
  } finally {
    progress?.stop();
  }
  const totalSeconds = (performance.now() - began) / 1000;
  const ran = Math.max(0, last - start);
  return {
    firstStep: start + 1,
    lastStep: last,
    losses,
    evals,
    tokensPerSec: ran > 0 ? (ran * B * manifest.gradAccum * T) / totalSeconds : 0,
    runSeconds,
    totalSeconds,
    checkpoint: lastCheckpoint,
  };
}

