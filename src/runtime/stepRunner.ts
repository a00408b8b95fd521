/**
 * Runs a stage's step graph: one `session.run` per step, or K steps per run
 * through the plan's Loop model (parameters cross to the device and back once
 * per K steps — the design for CUDA). Either way the outputs that feed the
 * next step go back into the parameter store, and each step's scalar metrics
 * come back in order.
 */
import { join } from 'node:path';
import type { Manifest } from '../../targets/onnx/compile.js';
import { stackedBatchInputName } from '../check/dataSchema.js';
import { mixSeed } from '../ir/seeds.js';
import type { BatchField } from '../ir/lower/plan.js';
import { createSession, ort, type Device, type OrtSession, type OrtTensor } from './ort.js';
import type { ParamStore } from './paramStore.js';

export interface StepRunnerOptions {
  readonly modelDir: string;
  readonly device: Device;
  readonly threads?: number;
  /** Steps per session.run (default 1); above 1 the plan's Loop model runs them. */
  readonly stepsPerRun?: number;
}

/** A step's batch by graph input name. */
export type Batch = Record<string, OrtTensor>;

export class StepRunner {
  /** Seconds spent inside session.run. */
  runSeconds = 0;

  private constructor(
    private readonly manifest: Manifest<{ seed: number }>,
    private readonly step: OrtSession,
    private readonly loop: OrtSession | null,
    /** The most steps one call may run. */
    readonly stepsPerRun: number,
  ) {}

  static async create(manifest: Manifest<{ seed: number }>, options: StepRunnerOptions): Promise<StepRunner> {
    const K = Math.max(1, options.stepsPerRun ?? 1);
    const body = manifest.loop?.body ?? 'train_step';
    const step = await createSession(join(options.modelDir, manifest.graphs[body]!.file), options.device, options.threads);
    const loop = K > 1 && manifest.loop ? await createSession(join(options.modelDir, manifest.graphs[manifest.loop.name]!.file), options.device, options.threads) : null;
    return new StepRunner(manifest, step, loop, loop ? K : 1);
  }

  /**
   * Runs steps first … first+batches.length−1 (one session.run either way),
   * updating `store`; returns each step's scalar outputs by name.
   */
  async run(store: ParamStore, first: number, batches: readonly Batch[]): Promise<Record<string, number>[]> {
    const t0 = performance.now();
    const seed = this.manifest.settings.seed;
    if (!this.loop || batches.length === 1) {
      const body = this.manifest.graphs[this.manifest.loop?.body ?? 'train_step']!;
      const feeds: Record<string, OrtTensor> = { step: int64Scalar(first), seed: int64Scalar(mixSeed(seed, first)) };
      for (const { name } of body.inputs) feeds[name] ??= batches[0]![name] ?? store.get(name);
      const out = await this.step.run(feeds);
      this.runSeconds += (performance.now() - t0) / 1000;
      store.update(out, this.manifest.feedback);
      return [scalars(out, body.outputs.map((o) => o.name), 0)];
    }
    const loop = this.manifest.loop!;
    const entry = this.manifest.graphs[loop.name]!;
    const feeds: Record<string, OrtTensor> = { steps: int64Scalar(batches.length), step0: int64Scalar(first), seed_base: int64Scalar(mixSeed(seed, 0)) };
    for (const input of Object.values(this.manifest.feedback)) feeds[`init.${input}`] = store.get(input);
    Object.assign(feeds, stackBatches(batches, this.manifest.data[loop.data]!.fields));
    for (const { name } of entry.inputs) if (!(name in feeds)) feeds[name] = store.get(name);
    const out = await this.loop.run(feeds);
    this.runSeconds += (performance.now() - t0) / 1000;
    for (const input of Object.values(this.manifest.feedback)) store.set(input, out[`final.${input}`]!);
    return batches.map((_, i) => Object.fromEntries(loop.scanOutputs.map((n) => [n, (out[`all.${n}`]!.data as Float32Array)[i]!])));
  }

  async release(): Promise<void> {
    await this.step.release();
    await this.loop?.release();
  }
}

function int64Scalar(v: number): OrtTensor {
  return new ort.Tensor('int64', BigInt64Array.of(BigInt(v)), []);
}

/** The scalar (one-element float) outputs among `names`. */
function scalars(out: Readonly<Record<string, OrtTensor>>, names: readonly string[], index: number): Record<string, number> {
  const result: Record<string, number> = {};
  for (const n of names) {
    const t = out[n]!;
    if (t.dims.length === 0 && t.type === 'float32') result[n] = (t.data as Float32Array)[index]!;
  }
  return result;
}

/** Batches of consecutive steps stacked on a new leading axis, as the Loop model's `batches.F` inputs. */
function stackBatches(batches: readonly Batch[], fields: readonly BatchField[]): Batch {
  const out: Batch = {};
  for (const f of fields) {
    const parts = batches.map((b) => b[f.input]!);
    const first = parts[0]!;
    const size = (first.data as ArrayLike<unknown>).length;
    const dims = [parts.length, ...first.dims];
    if (first.type === 'int64') {
      const data = new BigInt64Array(size * parts.length);
      parts.forEach((p, i) => data.set(p.data as BigInt64Array, i * size));
      out[stackedBatchInputName(f.field)] = new ort.Tensor('int64', data, dims);
    } else {
      const data = new Float32Array(size * parts.length);
      parts.forEach((p, i) => data.set(p.data as Float32Array, i * size));
      out[stackedBatchInputName(f.field)] = new ort.Tensor('float32', data, dims);
    }
  }
  return out;
}
