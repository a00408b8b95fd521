/**
 * What a stage kind is: a module with `plan` (checked stage → StagePlan) and
 * `run` (plan + run context → result). One table (registry.ts) maps each kind
 * the checker knows to its module.
 */
import type { ModuleInfo } from '../check/modules.js';
import type { StagePlan } from '../ir/lower/plan.js';
import type { DatasetSpec } from '../ir/lower/types.js';
import type { Device } from '../runtime/ort.js';
import type { CheckpointIdentity } from '../runtime/paramStore.js';
import type { StopRequest } from '../runtime/signals.js';

/** What planning may know about the run: data access that lowering itself never does. */
export interface PlanContext {
  /** Overrides the stage's `steps` (smoke tests, `ptr run --steps`). */
  readonly steps?: number;
  /** Total steps for `epochs = N`: reads the data's size. Absent: such a stage needs `steps`. */
  readonly stepsForEpochs?: (dataset: DatasetSpec, epochs: number, rowsPerStep: number) => number;
}

/** Where and how a stage runs. */
export interface RunContext {
  /** The recipe file (named in the ONNX files' doc strings). */
  readonly recipe: string;
  readonly runDir: string;
  readonly device: Device;
  readonly resume: boolean;
  readonly threads?: number;
  readonly stepsPerRun?: number;
  /** The producer version written into ONNX files. */
  readonly version: string;
  /** The run's id and this stage's fingerprint, written into its checkpoints (set by the driver per stage). */
  readonly identity?: CheckpointIdentity;
  /** Polled between steps: a SIGINT/SIGTERM received asks the stage to checkpoint and stop. */
  readonly stop?: StopRequest;
  /** Run a stage even when it is predicted to need more memory than is available. */
  readonly force?: boolean;
  /** A line for the user (progress goes to stderr; results are returned). */
  readonly log: (line: string) => void;
}

export interface StageResult {
  readonly stage: string;
  /** What the stage did, in a few lines, for the user. */
  readonly summary: string;
  /** The checkpoint the stage leaves (its final weights), if it trains. */
  readonly checkpoint: string | null;
}

export interface StageKindModule<P extends StagePlan = StagePlan> {
  readonly kind: string;
  plan(module: ModuleInfo, stage: string, context: PlanContext): P;
  run(plan: P, context: RunContext): Promise<StageResult>;
}
