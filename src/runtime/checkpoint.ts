/**
 * Checkpoints of a train stage, one folder per saved step:
 *
 *   checkpoints/<stage>/step-000200/model.safetensors      parameters, named as in the model
 *   checkpoints/<stage>/step-000200/optimizer.safetensors  optimizer state
 *   checkpoints/<stage>/step-000200/trainer.json           step, seed, run id, fingerprint
 *   checkpoints/<stage>/latest                             the newest complete folder's name
 *
 * Above a shard size (Hugging Face's 5 GB by default) the weights are sharded as
 * `save_pretrained` shards them: `model-00001-of-00003.safetensors` … and
 * `model.safetensors.index.json`. Files are streamed (positioned writes from the
 * tensors' own memory; positioned reads of one tensor at a time), so checkpoints
 * of any size are written and read.
 *
 * A folder is written under a temporary name and renamed into place, then
 * `latest` is replaced atomically, so a run killed at any moment leaves the
 * previous checkpoint intact and `latest` naming a complete one. Only the current
 * run's older checkpoints are ever pruned, and weights that are not finite are
 * never written: every checkpoint is one a run can go on from.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PlannedParam, StatePlan } from '../ir/lower/plan.js';
import { writeFileAtomic, writeJsonAtomic } from './atomic.js';
import { fileSystemError, UserError, withPath } from './errors.js';
import type { StageFingerprint } from './runFolder.js';
import { DEFAULT_SHARD_BYTES, openSafetensorsIn, toFloat32, writeShardedSafetensors, type SafetensorsReader, type StDType, type StTensor, type TensorInfo } from './safetensors.js';

const FLOAT_DTYPES: ReadonlySet<StDType> = new Set(['F32', 'F16', 'BF16', 'F64']);

/** `trainer.json`: where a checkpoint stands. */
export interface TrainerState {
  readonly stage: string;
  readonly step: number;
  readonly steps: number;
  readonly seed: number;
  /** Batches and dropout masks are pure functions of (seed, step): this is the whole RNG state. */
  readonly rng: { readonly scheme: 'seed-and-step'; readonly seed: number };
  readonly complete: boolean;
  /** The run that wrote it (run.json's id); absent in checkpoints of older versions. */
  readonly run?: string;
  /** What produced the weights, compared on resume. */
  readonly fingerprint?: StageFingerprint;
  /** The validation loss at this step, when an eval ran here (always finite: a non-finite one stops the run first). */
  readonly valLoss?: number;
}

export interface Checkpoint {
  readonly dir: string;
  readonly trainer: TrainerState;
  /** By graph input name. */
  readonly params: Map<string, Float32Array>;
  readonly state: Map<string, Float32Array>;
}

export class CheckpointError extends UserError {}

/** The weights or optimizer state are NaN or infinite: such a checkpoint is never written, and never loaded. */
export class NonFiniteWeightsError extends UserError {}

const KEEP = 2;

/** What a checkpoint's trainer.json must agree with. */
export interface CheckpointExpectation {
  /** The stage it belongs to. */
  readonly stage?: string;
  /** The stage's total steps now: a checkpoint's step must not be past them. */
  readonly steps?: number;
}

/** Options of {@link saveCheckpoint}. */
export interface SaveOptions {
  /** Shard weights files above this many bytes (default 5 GB, as Hugging Face). */
  readonly shardBytes?: number;
}

export function stageCheckpointDir(runDir: string, stage: string): string {
  return join(runDir, 'checkpoints', stage);
}

/** `step-000200`. */
function stepFolderName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

/**
 * Writes a checkpoint folder atomically and moves `latest` to it; then removes
 * this run's checkpoints beyond the newest KEEP (never another run's). Throws
 * NonFiniteWeightsError, writing nothing, when a weight or state value is NaN or
 * infinite. Returns the folder.
 */
export function saveCheckpoint(
  runDir: string,
  trainer: TrainerState,
  params: readonly PlannedParam[],
  values: ReadonlyMap<string, Float32Array>,
  state: readonly StatePlan[],
  stateValues: ReadonlyMap<string, Float32Array>,
  options: SaveOptions = {},
): string {
  const model = new Map<string, StTensor>();
  for (const p of params) model.set(p.name, { dtype: 'F32', shape: [...p.shape], data: values.get(p.input)! });
  const opt = new Map<string, StTensor>();
  for (const s of state) opt.set(s.input, { dtype: 'F32', shape: [...s.shape], data: stateValues.get(s.input)! });
  for (const [what, tensors] of [['weight', model], ['optimizer state', opt]] as const) {
    const bad = firstNonFinite(tensors);
    if (bad) throw new NonFiniteWeightsError(`stage ${trainer.stage}: ${what} '${bad.name}' is ${bad.value} (element ${bad.index}) after step ${trainer.step}; the training diverged, so no checkpoint is written`);
  }
  const root = stageCheckpointDir(runDir, trainer.stage);
  withPath(root, () => mkdirSync(root, { recursive: true }));
  const name = stepFolderName(trainer.step);
  const tmp = join(root, `.${name}.tmp-${process.pid}`);
  withPath(tmp, () => {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
  });
  try {
    const meta = { stage: trainer.stage, step: String(trainer.step), format: 'pt' };
    const shardBytes = options.shardBytes ?? DEFAULT_SHARD_BYTES;
    writeShardedSafetensors(tmp, 'model', model, meta, shardBytes);
    writeShardedSafetensors(tmp, 'optimizer', opt, meta, shardBytes);
    writeJsonAtomic(join(tmp, 'trainer.json'), trainer);
  } catch (e) {
    // A full disk: the partial folder goes, the previous checkpoint stays.
    rmSync(tmp, { recursive: true, force: true });
    throw fileSystemError(e, join(root, name), { replacePath: true }) ?? e;
  }
  const final = join(root, name);
  withPath(final, () => {
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  });
  writeFileAtomic(join(root, 'latest'), `${name}\n`);
  // This run's older checkpoints beyond the last KEEP are removed only after `latest` moved on.
  const ours = readdirSync(root)
    .filter((f) => /^step-\d+$/.test(f) && f !== name && runOf(join(root, f)) === (trainer.run ?? null))
    .sort();
  for (const f of ours.slice(0, Math.max(0, ours.length - (KEEP - 1)))) rmSync(join(root, f), { recursive: true, force: true });
  return final;
}

/** The run id in a checkpoint folder's trainer.json; null when it has none or cannot be read. */
function runOf(dir: string): string | null {
  try {
    const run = (JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8')) as { run?: unknown }).run;
    return typeof run === 'string' ? run : null;
  } catch {
    return null;
  }
}

function firstNonFinite(tensors: ReadonlyMap<string, StTensor>): { name: string; index: number; value: number } | null {
  for (const [name, t] of tensors) {
    const data = t.data as Float32Array;
    for (let i = 0; i < data.length; i++) {
      // x - x is 0 for every finite x and NaN otherwise: one test per element.
      if (data[i]! - data[i]! !== 0) return { name, index: i, value: data[i]! };
    }
  }
  return null;
}

/**
 * The newest complete checkpoint of a stage, or null if there is none: the one
 * `latest` names, or, if that folder is gone (deleted as damaged), the newest left.
 */
export function latestCheckpointDir(runDir: string, stage: string): string | null {
  const root = stageCheckpointDir(runDir, stage);
  const pointer = join(root, 'latest');
  if (!existsSync(pointer)) return null;
  const named = readFileSync(pointer, 'utf8').trim();
  const dir = join(root, named);
  if (/^step-\d+$/.test(named) && existsSync(dir)) return dir;
  const left = readdirSync(root).filter((f) => /^step-\d+$/.test(f) && existsSync(join(root, f, 'trainer.json'))).sort();
  return left.length ? join(root, left[left.length - 1]!) : null;
}

/**
 * Loads a checkpoint: its trainer.json validated field by field, and every tensor
 * the recipe needs checked for its shape and for finite values (read one tensor at
 * a time). `state` null reads the weights only (export, sampling).
 */
export function loadCheckpoint(dir: string, params: readonly PlannedParam[], state: readonly StatePlan[] | null, expect: CheckpointExpectation = {}): Checkpoint {
  const trainer = readTrainerState(dir, expect);
  const values = new Map<string, Float32Array>();
  withReader(dir, 'model', (reader) => {
    for (const p of params) {
      if (!reader.tensors.has(p.name)) throw new CheckpointError(`${reader.path}: has no tensor '${p.name}', which the recipe's model needs`);
      values.set(p.input, readTensor(reader, p.name, p.shape));
    }
  });
  const stateValues = new Map<string, Float32Array>();
  if (state) {
    withReader(dir, 'optimizer', (reader) => {
      for (const s of state) {
        if (!reader.tensors.has(s.input)) throw new CheckpointError(`${reader.path}: has no optimizer state '${s.input}'; was it written by a different optimizer?`);
        stateValues.set(s.input, readTensor(reader, s.input, s.shape));
      }
    });
  }
  return { dir, trainer, params: values, state: stateValues };
}

/** Opens `<prefix>.safetensors` (or its shards) in a checkpoint folder for `body`; damage is a CheckpointError naming the file. */
function withReader<T>(dir: string, prefix: string, body: (reader: SafetensorsReader) => T): T {
  const reader = damaged(() => openSafetensorsIn(dir, prefix));
  try {
    return body(reader);
  } finally {
    reader.close();
  }
}

/** One tensor as f32, its dtype and shape checked, its values finite. */
function readTensor(reader: SafetensorsReader, name: string, shape: readonly number[]): Float32Array {
  const file = reader.fileOf(name);
  expectShape(file, name, reader.tensors.get(name)!, shape);
  const values = toFloat32(damaged(() => reader.read(name)));
  for (let i = 0; i < values.length; i++) {
    if (values[i]! - values[i]! !== 0) {
      throw new NonFiniteWeightsError(`${file}: '${name}' holds ${values[i]} (element ${i}); these weights diverged and cannot be used (resume from an earlier checkpoint, with a lower learning rate)`);
    }
  }
  return values;
}

/** Runs a read; a malformed file is a CheckpointError naming it and the damage (file system errors pass through). */
function damaged<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new CheckpointError(`${(e as Error).message} (the checkpoint is damaged; delete its folder to resume from the one before)`);
  }
}

/**
 * Reads and validates a checkpoint's trainer.json: every field of the right type,
 * the step an integer in [0, steps] (and not past `expect.steps`), `complete`
 * exactly when the step is the last, the stage the expected one. A tampered or
 * damaged file is a CheckpointError naming the field.
 */
export function readTrainerState(dir: string, expect: CheckpointExpectation = {}): TrainerState {
  const file = join(dir, 'trainer.json');
  const fail = (why: string): never => {
    throw new CheckpointError(`${file}: ${why} (the checkpoint is damaged; delete its folder to resume from the one before)`);
  };
  let v: Record<string, unknown> | null = null;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> | null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== undefined && (e as NodeJS.ErrnoException).code !== 'ENOENT') throw fileSystemError(e, file) ?? e;
    fail((e as Error).message);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail('expected a JSON object');
  const count = (key: string, min: number): number => {
    const x = v![key];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) fail(`"${key}" is ${JSON.stringify(x)}; expected an integer ≥ ${min}`);
    return x as number;
  };
  if (typeof v['stage'] !== 'string') fail(`"stage" is ${JSON.stringify(v['stage'])}; expected the stage's name`);
  const stage = v['stage'] as string;
  if (expect.stage !== undefined && stage !== expect.stage) fail(`"stage" is ${JSON.stringify(stage)}, but the checkpoint is in stage ${expect.stage}'s folder`);
  const steps = count('steps', 1);
  const step = count('step', 0);
  const seed = count('seed', 0);
  if (step > steps) fail(`"step" ${step} is past "steps" ${steps}`);
  if (expect.steps !== undefined && step > expect.steps) fail(`"step" ${step} is past the stage's ${expect.steps} steps`);
  if (typeof v['complete'] !== 'boolean') fail(`"complete" is ${JSON.stringify(v['complete'])}; expected true or false`);
  if (v['complete'] !== (step === steps)) fail(`"complete" is ${v['complete']} but "step" is ${step} of ${steps}`);
  const rng = v['rng'] as { scheme?: unknown; seed?: unknown } | null;
  if (rng === null || typeof rng !== 'object' || rng.scheme !== 'seed-and-step' || rng.seed !== seed) fail(`"rng" is ${JSON.stringify(rng)}; expected {"scheme": "seed-and-step", "seed": ${seed}}`);
  if (v['run'] !== undefined && (typeof v['run'] !== 'string' || !/^[0-9a-f]{8,64}$/.test(v['run']))) fail(`"run" is ${JSON.stringify(v['run'])}; expected the run's hex id`);
  const fingerprint = v['fingerprint'];
  if (fingerprint !== undefined && (fingerprint === null || typeof fingerprint !== 'object' || Array.isArray(fingerprint))) fail(`"fingerprint" is ${JSON.stringify(fingerprint)}; expected an object`);
  if (v['valLoss'] !== undefined && (typeof v['valLoss'] !== 'number' || !Number.isFinite(v['valLoss']))) fail(`"valLoss" is ${JSON.stringify(v['valLoss'])}; expected a finite number`);
  return v as unknown as TrainerState;
}

function expectShape(file: string, name: string, t: TensorInfo, shape: readonly number[]): void {
  // Floating-point weights of any width are read into the f32 parameters (f16/bf16 exactly, f64 rounded).
  if (!FLOAT_DTYPES.has(t.dtype)) throw new CheckpointError(`${file}: '${name}' is ${t.dtype}, the recipe needs floating-point weights (F32, F16, BF16 or F64)`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new CheckpointError(`${file}: '${name}' has shape [${t.shape.join(', ')}] but the recipe's model needs [${shape.join(', ')}]`);
  }
}

/** Reads one tensor of a stage's final checkpoint: (model, stage, name, expected shape); `close()` when done. */
export interface CheckpointTensorLoader {
  (model: string, stage: string, name: string, shape: readonly number[]): Float32Array;
  close(): void;
}

/** Reads tensors of stages' final checkpoints in `runDir`, one at a time; for parameters that start from another stage. */
export function checkpointTensorLoader(runDir: string): CheckpointTensorLoader {
  const readers = new Map<string, SafetensorsReader>();
  const load = (model: string, stage: string, name: string, shape: readonly number[]): Float32Array => {
    let reader = readers.get(stage);
    if (!reader) {
      const dir = latestCheckpointDir(runDir, stage);
      if (!dir) throw new CheckpointError(`model ${model} starts from stage ${stage}'s checkpoint, but ${stageCheckpointDir(runDir, stage)} has none; run stage ${stage} first`);
      const trainer = readTrainerState(dir, { stage });
      if (!trainer.complete) throw new CheckpointError(`model ${model} starts from stage ${stage}, which stopped at step ${trainer.step} of ${trainer.steps}; finish it first (ptr run --resume)`);
      reader = damaged(() => openSafetensorsIn(dir, 'model'));
      readers.set(stage, reader);
    }
    if (!reader.tensors.has(name)) throw new CheckpointError(`${reader.path}: has no tensor '${name}', which model ${model} needs`);
    return readTensor(reader, name, shape);
  };
  return Object.assign(load, {
    close() {
      for (const r of readers.values()) r.close();
      readers.clear();
    },
  });
}
