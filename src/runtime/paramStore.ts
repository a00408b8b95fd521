/**
 * The parameters and optimizer state of a running stage: where they start
 * (seeded initialisers, other stages' checkpoints, or this stage's latest
 * checkpoint on resume), their current values as onnxruntime tensors (fed to
 * every graph as they are, no copies), how a step's outputs replace them, and
 * how they are checkpointed. Any stage kind that updates weights uses one.
 */
import type { Manifest } from '../../targets/onnx/compile.js';
import type { PlannedParam, StatePlan } from '../ir/lower/plan.js';
import { sizeOf } from '../ir/tensor.js';
import { checkpointTensorLoader, latestCheckpointDir, loadCheckpoint, saveCheckpoint, type SaveOptions, type TrainerState } from './checkpoint.js';
import { initialParams } from './init.js';
import { ort, type OrtTensor } from './ort.js';
import type { StageFingerprint } from './runFolder.js';

export interface ParamStoreOptions {
  /** Run folder: checkpoints/ of this and earlier stages. */
  readonly runDir: string;
  /** Start from this stage's latest checkpoint, when there is one. */
  readonly resume: boolean;
  readonly seed: number;
  /** The run's id and the stage's fingerprint, written into every checkpoint (run folders opened by the driver). */
  readonly identity?: CheckpointIdentity;
  /** How checkpoints are written (shard size). */
  readonly save?: SaveOptions;
}

/** What ties a checkpoint to the run that wrote it. */
export interface CheckpointIdentity {
  /** run.json's id: only checkpoints with it are pruned. */
  readonly run: string;
  readonly fingerprint: StageFingerprint;
}

export class ParamStore {
  /** Current values by graph input name: parameters and optimizer state. */
  private readonly tensors = new Map<string, OrtTensor>();
  /** The parameters this stage checkpoints: the target model's (frozen models come from their own stages). */
  private readonly own: readonly PlannedParam[];

  private constructor(
    private readonly manifest: Manifest,
    private readonly options: ParamStoreOptions,
    /** The step the values are at: 0 when fresh, the checkpoint's step when resumed. */
    readonly step: number,
    /** The checkpoint folder resumed from, if any. */
    readonly resumedFrom: string | null,
  ) {
    this.own = manifest.params.filter((p) => p.model === manifest.model);
  }

  static open(manifest: Manifest, options: ParamStoreOptions): ParamStore {
    const own = manifest.params.filter((p) => p.model === manifest.model);
    const loader = checkpointTensorLoader(options.runDir);
    let params: Map<string, Float32Array>;
    try {
      params = initialParams(manifest.params, options.seed, loader);
    } finally {
      loader.close();
    }
    const previous = options.resume ? latestCheckpointDir(options.runDir, manifest.stage) : null;
    let state = new Map<string, Float32Array>();
    let step = 0;
    if (previous) {
      const steps = (manifest.settings as { steps?: unknown }).steps;
      const ck = loadCheckpoint(previous, own, manifest.state, { stage: manifest.stage, ...(typeof steps === 'number' ? { steps } : {}) });
      for (const [k, v] of ck.params) params.set(k, v);
      state = ck.state;
      step = ck.trainer.step;
    } else {
      for (const s of manifest.state) state.set(s.input, new Float32Array(sizeOf(s.shape)));
    }
    const store = new ParamStore(manifest, options, step, previous);
    for (const p of manifest.params) store.tensors.set(p.input, new ort.Tensor('float32', params.get(p.input)!, [...p.shape]));
    for (const s of manifest.state) store.tensors.set(s.input, new ort.Tensor('float32', state.get(s.input)!, [...s.shape]));
    return store;
  }

  has(input: string): boolean {
    return this.tensors.has(input);
  }

  get(input: string): OrtTensor {
    const t = this.tensors.get(input);
    if (!t) throw new Error(`the parameter store has no '${input}'`);
    return t;
  }

  /** Replaces values by a step's outputs: `feedback` maps an output name to the input it becomes. */
  update(outputs: Readonly<Record<string, OrtTensor>>, feedback: Readonly<Record<string, string>>): void {
    for (const [output, input] of Object.entries(feedback)) this.set(input, outputs[output]!);
  }

  set(input: string, value: OrtTensor): void {
    this.tensors.set(input, value);
  }

  /** The target model's current weights by graph input name (for export and sampling). */
  weights(): Map<string, Float32Array> {
    return new Map(this.own.map((p) => [p.input, this.get(p.input).data as Float32Array]));
  }

  /**
   * Writes a checkpoint of the target model and optimizer state at `step`; returns
   * its folder. `valLoss` is the eval loss at this step, when one ran. Throws
   * NonFiniteWeightsError (writing nothing) when the weights are not finite.
   */
  save(step: number, complete: boolean, valLoss?: number): string {
    const { stage, settings } = this.manifest as Manifest<{ steps: number; seed: number }>;
    const stateValues = new Map(this.manifest.state.map((s: StatePlan) => [s.input, this.get(s.input).data as Float32Array]));
    const identity = this.options.identity;
    const trainer: TrainerState = {
      stage,
      step,
      steps: settings.steps,
      seed: settings.seed,
      rng: { scheme: 'seed-and-step', seed: settings.seed },
      complete,
      ...(identity ? { run: identity.run, fingerprint: identity.fingerprint } : {}),
      ...(valLoss !== undefined ? { valLoss } : {}),
    };
    return saveCheckpoint(this.options.runDir, trainer, this.own, this.weights(), this.manifest.state, stateValues, this.options.save);
  }
}
