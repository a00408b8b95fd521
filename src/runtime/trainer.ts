/**
 * The training loop of a compiled train stage, composed of the shared runtime
 * pieces: a ParamStore (weights and optimizer state, checkpoints, resume), a
 * StepRunner (one step or K per session.run) and an Evaluator (periodic
 * validation loss). Batches and dropout seeds are pure functions of
 * (seed, step), so a run resumed from a checkpoint computes exactly the losses
 * it would have.
 */
import type { Manifest } from '../../targets/onnx/compile.js';
import type { TrainSettings } from '../ir/lower/trainStage.js';
import { openStageData } from './datasets.js';
import { UserError } from './errors.js';
import { Evaluator } from './evaluator.js';
import { filterMetrics, MetricsWriter } from './metrics.js';
import type { Device } from './ort.js';
import { NonFiniteWeightsError, type SaveOptions } from './checkpoint.js';
import { ParamStore, type CheckpointIdentity } from './paramStore.js';
import { InterruptedError, type StopRequest } from './signals.js';
import { createProgress } from './progress.js';
import { StepRunner, type Batch } from './stepRunner.js';
import { join } from 'node:path';

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
  /** The run's id and the stage's fingerprint, written into its checkpoints. */
  readonly identity?: CheckpointIdentity;
  /** How checkpoints are written (shard size). */
  readonly save?: SaveOptions;
  /** Polled after every step: a signal received stops the run with a checkpoint (InterruptedError). */
  readonly stop?: StopRequest;
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

/** The loss, the eval loss, the gradient norm or the weights became NaN or infinite: the run stops, the last good checkpoint stays. */
export class DivergedError extends UserError {}

export async function train(manifest: Manifest<TrainSettings>, options: TrainOptions): Promise<TrainResult> {
  const device = options.device ?? 'cpu';
  const settings = manifest.settings;
  const trainData = manifest.data['train']!;
  const data = openStageData(trainData.spec, settings.seed, options.runDir);
  // `eval every N on corpus.val` reads the val split of the file already loaded for training.
  const evalSpec = manifest.data['eval']?.spec;
  const sameFile = evalSpec && JSON.stringify({ ...evalSpec, part: null }) === JSON.stringify({ ...trainData.spec, part: null });
  const valBatches = () => (sameFile ? data : openStageData(evalSpec!, settings.seed, options.runDir)).valBatches(settings.batchSize);
  const store = ParamStore.open(manifest, {
    runDir: options.runDir,
    resume: options.resume ?? false,
    seed: settings.seed,
    ...(options.identity ? { identity: options.identity } : {}),
    ...(options.save ? { save: options.save } : {}),
  });
  const runner = await StepRunner.create(manifest, { modelDir: options.modelDir, device, ...(options.threads ? { threads: options.threads } : {}), ...(options.stepsPerRun ? { stepsPerRun: options.stepsPerRun } : {}) });
  let evaluator: Evaluator | null = null;
  try {
    evaluator = await Evaluator.create(manifest, 'eval', valBatches, { modelDir: options.modelDir, device, ...(options.threads ? { threads: options.threads } : {}) });
    return await loop(manifest, options, store, runner, evaluator, data.trainBatch.bind(data));
  } finally {
    await runner.release();
    await evaluator?.release();
  }
}

async function loop(
  manifest: Manifest<TrainSettings>,
  options: TrainOptions,
  store: ParamStore,
  runner: StepRunner,
  evaluator: Evaluator | null,
  trainBatch: (step: number, rows: number) => Batch,
): Promise<TrainResult> {
  const { stage } = manifest;
  const settings = manifest.settings;
  const start = store.step;
  const metricsFile = join(options.runDir, 'metrics.jsonl');
  // Every start drops this stage's records after the step it starts from: a resumed run
  // recomputes them, a fresh one starts over, so no step is ever in the file twice.
  filterMetrics(metricsFile, (r) => r.stage !== stage || r.step <= start);
  const metrics = new MetricsWriter(metricsFile);
  const checkpointEvery = options.checkpointEvery ?? settings.evalEvery ?? 100;
  const last = Math.min(settings.steps, options.stopAfter ?? settings.steps);
  const progress = options.progress === null ? null : createProgress({ stage, total: settings.steps, stream: options.progress, every: options.progressEvery });
  const rows = settings.batchSize * settings.gradAccum;
  const T = manifest.data['train']!.spec.seqLen!;
  const losses: number[] = [];
  const evals: { step: number; loss: number }[] = [];
  let lastCheckpoint: string | null = store.resumedFrom;
  const began = performance.now();

  /** Steps until the next eval, checkpoint or the end, at most K. */
  const chunk = (step: number): number => {
    let n = Math.min(runner.stepsPerRun, last - step + 1);
    for (const every of [settings.evalEvery, checkpointEvery]) if (every) n = Math.min(n, every - ((step - 1) % every));
    return n;
  };

  const diverged = (what: string): DivergedError => {
    const kept = lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint}` : 'no checkpoint was written yet';
    return new DivergedError(`stage ${stage}: ${what}; stopping (${kept}). Try a lower learning rate or clip_norm.`);
  };
  const save = (step: number, valLoss?: number): void => {
    try {
      lastCheckpoint = store.save(step, step === settings.steps, valLoss);
    } catch (e) {
      if (e instanceof NonFiniteWeightsError) throw diverged(e.message.replace(`stage ${stage}: `, '').replace(/, so no checkpoint is written$/, ''));
      throw e;
    }
  };

  try {
    for (let first = start + 1; first <= last; ) {
      const batches = Array.from({ length: chunk(first) }, (_, i) => trainBatch(first - 1 + i, rows));
      const results = await runner.run(store, first, batches);
      for (const [i, r] of results.entries()) {
        const step = first + i;
        const loss = r['loss']!;
        if (!Number.isFinite(loss)) throw diverged(`the loss is ${loss} at step ${step}`);
        const gradNorm = r['grad_norm'];
        if (gradNorm !== undefined && !Number.isFinite(gradNorm)) throw diverged(`the gradient norm is ${gradNorm} at step ${step}`);
        losses.push(loss);
        const tokensPerSec = ((step - start) * rows * T) / ((performance.now() - began) / 1000);
        metrics.write({ stage, step, loss, lr: r['lr']!, grad_norm: r['grad_norm']!, tokens_per_sec: Math.round(tokensPerSec) });
        progress?.update(step, { loss, tokensPerSec });
      }
      const step = first + results.length - 1;
      first = step + 1;
      let valLoss: number | undefined;
      if (evaluator && settings.evalEvery && step % settings.evalEvery === 0) {
        valLoss = await evaluator.evaluate(store);
        evals.push({ step, loss: valLoss });
        metrics.write({ stage, step, split: 'val', loss: valLoss });
        progress?.log(`${stage}  step ${step}  val loss ${valLoss.toFixed(4)}`);
        // A checkpoint is "good" only if its eval was finite: a diverged eval stops before saving.
        if (!Number.isFinite(valLoss)) throw diverged(`the validation loss is ${valLoss} at step ${step}`);
      }
      const saved = step % checkpointEvery === 0 || step === settings.steps;
      if (saved) save(step, valLoss);
      const signal = options.stop?.signal;
      if (signal && step < last) {
        if (!saved) save(step);
        throw new InterruptedError(signal, `stage ${stage}: stopped by ${signal} after step ${step} of ${settings.steps}; checkpoint ${lastCheckpoint}. Run the same command with --resume to continue.`);
      }
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
    tokensPerSec: ran > 0 ? (ran * rows * T) / totalSeconds : 0,
    runSeconds: runner.runSeconds,
    totalSeconds,
    checkpoint: lastCheckpoint,
  };
}
