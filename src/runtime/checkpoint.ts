/**
 * Checkpoints of a train stage, one folder per saved step:
 *
 *   checkpoints/<stage>/step-000200/model.safetensors      parameters, named as in the model
 *   checkpoints/<stage>/step-000200/optimizer.safetensors  optimizer state
 *   checkpoints/<stage>/step-000200/trainer.json           step, seed, data position, shapes
 *   checkpoints/<stage>/latest                             the newest complete folder's name
 *
 * A folder is written under a temporary name and renamed into place, then
 * `latest` is replaced atomically, so a run killed at any moment leaves the
 * previous checkpoint intact and `latest` naming a complete one.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PlannedParam, StatePlan } from '../ir/lower/plan.js';
import { writeFileAtomic, writeJsonAtomic } from './atomic.js';
import { UserError } from './errors.js';
import { readSafetensors, toFloat32, writeSafetensors, type StDType, type StTensor } from './safetensors.js';

const FLOAT_DTYPES: ReadonlySet<StDType> = new Set(['F32', 'F16', 'BF16', 'F64']);

export interface TrainerState {
  readonly stage: string;
  readonly step: number;
  readonly steps: number;
  readonly seed: number;
  /** Batches and dropout masks are pure functions of (seed, step): this is the whole RNG state. */
  readonly rng: { readonly scheme: 'seed-and-step'; readonly seed: number };
  readonly complete: boolean;
}

export interface Checkpoint {
  readonly dir: string;
  readonly trainer: TrainerState;
  /** By graph input name. */
  readonly params: Map<string, Float32Array>;
  readonly state: Map<string, Float32Array>;
}

export class CheckpointError extends UserError {}

const KEEP = 2;

export function stageCheckpointDir(runDir: string, stage: string): string {
  return join(runDir, 'checkpoints', stage);
}

export function saveCheckpoint(
  runDir: string,
  trainer: TrainerState,
  params: readonly PlannedParam[],
  values: ReadonlyMap<string, Float32Array>,
  state: readonly StatePlan[],
  stateValues: ReadonlyMap<string, Float32Array>,
): string {
  const root = stageCheckpointDir(runDir, trainer.stage);
  mkdirSync(root, { recursive: true });
  const name = `step-${String(trainer.step).padStart(6, '0')}`;
  const tmp = join(root, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const model = new Map<string, StTensor>();
  for (const p of params) model.set(p.name, { dtype: 'F32', shape: [...p.shape], data: values.get(p.input)! });
  const meta = { stage: trainer.stage, step: String(trainer.step), format: 'pt' };
  writeSafetensors(join(tmp, 'model.safetensors'), model, meta);
  const opt = new Map<string, StTensor>();
  for (const s of state) opt.set(s.input, { dtype: 'F32', shape: [...s.shape], data: stateValues.get(s.input)! });
  writeSafetensors(join(tmp, 'optimizer.safetensors'), opt, meta);
  writeJsonAtomic(join(tmp, 'trainer.json'), trainer);
  const final = join(root, name);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  writeFileAtomic(join(root, 'latest'), `${name}\n`);
  // Older checkpoints beyond the last KEEP are removed only after `latest` moved on.
  const old = readdirSync(root).filter((f) => /^step-\d+$/.test(f)).sort();
  for (const f of old.slice(0, Math.max(0, old.length - KEEP))) rmSync(join(root, f), { recursive: true, force: true });
  return final;
}

/**
 * The newest complete checkpoint of a stage, or null if there is none: the one
 * `latest` names, or, if that folder is gone (deleted as damaged), the newest left.
 */
export function latestCheckpointDir(runDir: string, stage: string): string | null {
  const root = stageCheckpointDir(runDir, stage);
  const pointer = join(root, 'latest');
  if (!existsSync(pointer)) return null;
  const dir = join(root, readFileSync(pointer, 'utf8').trim());
  if (existsSync(dir)) return dir;
  const left = readdirSync(root).filter((f) => /^step-\d+$/.test(f) && existsSync(join(root, f, 'trainer.json'))).sort();
  return left.length ? join(root, left[left.length - 1]!) : null;
}

/** Loads a checkpoint and checks every tensor against the shapes the recipe expects. */
export function loadCheckpoint(dir: string, params: readonly PlannedParam[], state: readonly StatePlan[] | null): Checkpoint {
  const trainer = readTrainer(dir);
  const modelFile = join(dir, 'model.safetensors');
  const model = readChecked(modelFile).tensors;
  const values = new Map<string, Float32Array>();
  for (const p of params) {
    const t = model.get(p.name);
    if (!t) throw new CheckpointError(`${modelFile}: has no tensor '${p.name}', which the recipe's model needs`);
    expectShape(modelFile, p.name, t, p.shape);
    values.set(p.input, toFloat32(t));
  }
  const stateValues = new Map<string, Float32Array>();
  if (state) {
    const optFile = join(dir, 'optimizer.safetensors');
    const opt = readChecked(optFile).tensors;
    for (const s of state) {
      const t = opt.get(s.input);
      if (!t) throw new CheckpointError(`${optFile}: has no optimizer state '${s.input}'; was it written by a different optimizer?`);
      expectShape(optFile, s.input, t, s.shape);
      stateValues.set(s.input, toFloat32(t));
    }
  }
  return { dir, trainer, params: values, state: stateValues };
}

function readTrainer(dir: string): TrainerState {
  const file = join(dir, 'trainer.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TrainerState;
  } catch (e) {
    throw new CheckpointError(`${file}: ${(e as Error).message} (the checkpoint is damaged; delete its folder to resume from the one before)`);
  }
}

/** Reads a checkpoint file; a damaged one is a CheckpointError naming the file and the damage. */
function readChecked(file: string): ReturnType<typeof readSafetensors> {
  try {
    return readSafetensors(file);
  } catch (e) {
    const why = (e as Error).message;
    throw new CheckpointError(`${why.startsWith(file) ? why : `${file}: ${why}`} (the checkpoint is damaged; delete its folder to resume from the one before)`);
  }
}

function expectShape(file: string, name: string, t: StTensor, shape: readonly number[]): void {
  // Floating-point weights of any width are read into the f32 parameters (f16/bf16 exactly, f64 rounded).
  if (!FLOAT_DTYPES.has(t.dtype)) throw new CheckpointError(`${file}: '${name}' is ${t.dtype}, the recipe needs floating-point weights (F32, F16, BF16 or F64)`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new CheckpointError(`${file}: '${name}' has shape [${t.shape.join(', ')}] but the recipe's model needs [${shape.join(', ')}]`);
  }
}

/** Reads one tensor of a stage's final checkpoint in `runDir`; for parameters that start from another stage. */
export function checkpointTensorLoader(runDir: string): (model: string, stage: string, name: string, shape: readonly number[]) => Float32Array {
  const cache = new Map<string, Map<string, StTensor>>();
  return (model, stage, name, shape) => {
    let tensors = cache.get(stage);
    if (!tensors) {
      const dir = latestCheckpointDir(runDir, stage);
      if (!dir) throw new CheckpointError(`model ${model} starts from stage ${stage}'s checkpoint, but ${stageCheckpointDir(runDir, stage)} has none; run stage ${stage} first`);
      const trainer = readTrainer(dir);
      if (!trainer.complete) throw new CheckpointError(`model ${model} starts from stage ${stage}, which stopped at step ${trainer.step} of ${trainer.steps}; finish it first (ptr run --resume)`);
      tensors = readChecked(join(dir, 'model.safetensors')).tensors;
      cache.set(stage, tensors);
    }
    const file = join(latestCheckpointDir(runDir, stage)!, 'model.safetensors');
    const t = tensors.get(name);
    if (!t) throw new CheckpointError(`${file}: has no tensor '${name}', which model ${model} needs`);
    expectShape(file, name, t, shape);
    return toFloat32(t);
  };
}
