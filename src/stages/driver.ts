/**
 * The pipeline driver: runs a checked recipe's stages in `after` order (or the
 * one asked for), each through its kind's module, then its deploys through
 * their target modules. A stage that cannot run is reported with the reason,
 * and so is every stage and deploy after it; the caller decides the exit code
 * from what did not run (never 0 when something requested did not).
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { DEPLOY_TARGETS } from '../../targets/index.js';
import { displayPath, projectFolder, type ModuleInfo } from '../check/modules.js';
import type { Expression } from '../language/ast.js';
import type { StagePlan } from '../ir/lower/plan.js';
import { NotYetSupported } from '../ir/lower/values.js';
import { makeDirs, writeFileAtomic } from '../runtime/atomic.js';
import { latestCheckpointDir, loadCheckpoint, readTrainerState } from '../runtime/checkpoint.js';
import { DataError, openStageData } from '../runtime/datasets.js';
import { UserError } from '../runtime/errors.js';
import {
  archiveRunFolder,
  describeRun,
  fingerprintChanges,
  holdsRun,
  inspectRunFolder,
  newRunRecord,
  removeLeftoverTemps,
  RunFolderError,
  stageFingerprint,
  writeRunRecord,
  type RunRecord,
  type StageFingerprint,
} from '../runtime/runFolder.js';
import { acquireRunLock } from '../runtime/runLock.js';
import { StopSignals } from '../runtime/signals.js';
import type { PlanContext, RunContext, StageResult } from './kind.js';
import { STAGE_MODULES } from './registry.js';

export interface PipelineOptions extends Omit<RunContext, 'log'> {
  /** Run only this stage (its inputs must exist in the run folder). */
  readonly stage?: string;
  /** Overrides every stage's `steps`. */
  readonly steps?: number;
  /** Archive what the run folder holds (to a sibling `<run>.archived-<time>`) and start over. */
  readonly fresh?: boolean;
  /** With `resume`: continue checkpoints written by a different recipe, data, seed or steps (saying what changed). */
  readonly allowChanged?: boolean;
  /** Stop cleanly on SIGINT/SIGTERM: finish the step, checkpoint, exit 130/143 (the CLI sets it). */
  readonly handleSignals?: boolean;
  /** Folders outside the recipe's project that deploys may write to (`--allow-write`). */
  readonly allowWrite?: readonly string[];
}

/** A recipe asks to write outside its project folder without --allow-write. */
export class WriteRefusedError extends UserError {}

export interface NotRun {
  /** `stage NAME` or `deploy M @ S to F`. */
  readonly what: string;
  readonly why: string;
}

export interface PipelineResult {
  readonly ran: readonly StageResult[];
  readonly deployed: readonly string[];
  readonly notRun: readonly NotRun[];
}

/** No such stage in the recipe: a mistake on the command line. */
export class UnknownStageError extends UserError {}

/** The stages of a module in an order that respects `after`. */
export function stagesInOrder(module: ModuleInfo): string[] {
  const order: string[] = [];
  const visit = (name: string): void => {
    if (order.includes(name)) return;
    const s = module.stages.get(name);
    if (!s) return;
    for (const a of s.after) visit(a.name);
    order.push(name);
  };
  for (const name of module.stages.keys()) visit(name);
  return order;
}

/** Throws UnknownStageError naming the stages there are. */
export function requireStage(module: ModuleInfo, stage: string): void {
  if (module.stages.has(stage)) return;
  const names = [...module.stages.keys()];
  throw new UnknownStageError(`${module.path} has no stage '${stage}' (${names.length ? `its stages are ${names.join(', ')}` : 'it has no stages'})`);
}

/** Steps for `epochs = N`: examples per epoch of the training split, times N, over the rows one step reads (generated data from `runDir`). */
export function stepsForEpochs(runDir?: string): NonNullable<PlanContext['stepsForEpochs']> {
  return (dataset, epochs, rowsPerStep) => {
    let examples: number;
    try {
      examples = openStageData(dataset, 0, runDir).examplesPerEpoch;
    } catch (e) {
      if (!(e instanceof DataError) || !dataset.producedBy) throw e;
      throw new DataError(`${e.message}; epochs = ${epochs} needs its size to count steps (give --steps N to compile without it)`);
    }
    return Math.max(1, Math.ceil((examples * epochs) / rowsPerStep));
  };
}

/** Plans one stage through its kind's module. */
export function planStage(module: ModuleInfo, stage: string, context: PlanContext = {}): StagePlan {
  requireStage(module, stage);
  const kind = module.stages.get(stage)!.stageKind.name;
  const kindModule = STAGE_MODULES[kind];
  if (!kindModule) throw new NotYetSupported(`stage ${stage}: no module runs ${kind} stages`);
  return kindModule.plan(module, stage, { stepsForEpochs: stepsForEpochs(), ...context });
}

/**
 * Runs a recipe's stages and deploys in `options.runDir`, holding the folder's
 * lock throughout. The folder's earlier contents decide what may happen: a run
 * folder that holds a run is only continued (`resume`, each stage's checkpoint
 * checked against its fingerprint) or archived (`fresh`), never overwritten.
 */
export async function runPipeline(module: ModuleInfo, options: PipelineOptions, log: (line: string) => void): Promise<PipelineResult> {
  if (options.stage) requireStage(module, options.stage);
  // Before any work: a deploy that may not write where it says would fail only after training.
  for (const d of module.facts.deploys) deployFolder(module, d, options.allowWrite ?? []);
  const runDir = options.runDir;
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) throw new RunFolderError(`the run folder ${runDir} is a file, not a folder; give --out a folder`);
  makeDirs(runDir);
  const lock = acquireRunLock(runDir);
  const signals = options.handleSignals ? StopSignals.install(log) : null;
  try {
    for (const leftover of removeLeftoverTemps(runDir)) log(`removed ${leftover}, left by a run killed while writing`);
    const record = openRunRecord(module, options, log);
    return await runStages(module, { ...options, ...(signals ? { stop: signals } : {}) }, record, log);
  } finally {
    signals?.dispose();
    lock.release();
  }
}

/**
 * Decides what to do with what the run folder holds, and returns the run record
 * to continue (written to run.json). Refuses (RunFolderError) to mix a new run with
 * an earlier one: without `resume` or `fresh`, any earlier run the stages would
 * overwrite; with `resume`, a run of another recipe (unless `allowChanged`).
 */
function openRunRecord(module: ModuleInfo, options: PipelineOptions, log: (line: string) => void): RunRecord {
  const runDir = options.runDir;
  const recipe = resolve(module.absPath);
  let contents = inspectRunFolder(runDir);
  if (options.fresh && holdsRun(contents)) {
    const archive = archiveRunFolder(runDir);
    log(`archived the earlier run in ${runDir} to ${archive}`);
    contents = inspectRunFolder(runDir);
  }
  const other = contents.record && contents.record.recipe !== recipe ? contents.record.recipe : null;
  if (!options.resume && !options.fresh) {
    // One stage of a pipeline may run into the folder of the same recipe's earlier stages.
    const clash = options.stage ? other !== null || contents.checkpointed.includes(options.stage) : holdsRun(contents);
    if (clash) {
      throw new RunFolderError(
        `${describeRun(runDir, contents)}; give --resume to continue it, --fresh to archive it (to ${runDir}.archived-<time>) and start over, or --out DIR for another folder`,
      );
    }
  }
  if (options.resume && other !== null) {
    const message = `${runDir} holds a run of ${other}, not of ${recipe}`;
    if (!options.allowChanged) throw new RunFolderError(`${message}; give --allow-changed to continue it anyway, --fresh to archive it and start over, or --out DIR for another folder`);
    log(`warning: ${message}; continuing it (--allow-changed)`);
  }
  const record = contents.record ? { ...contents.record, recipe } : newRunRecord(recipe, options.version);
  writeRunRecord(runDir, record);
  return record;
}

async function runStages(module: ModuleInfo, options: PipelineOptions, initial: RunRecord, log: (line: string) => void): Promise<PipelineResult> {
  let record = initial;
  const context: RunContext = { ...options, log };
  const stages = options.stage ? [options.stage] : stagesInOrder(module);
  const plans = new Map<string, StagePlan>();
  const ran: StageResult[] = [];
  const notRun: NotRun[] = [];
  const blocked = new Set<string>();
  for (const stage of stages) {
    const after = module.stages.get(stage)!.after.find((a) => blocked.has(a.name));
    if (after) {
      blocked.add(stage);
      notRun.push({ what: `stage ${stage}`, why: `it comes after ${after.name}, which did not run` });
      continue;
    }
    let plan: StagePlan;
    try {
      plan = planStage(module, stage, { stepsForEpochs: stepsForEpochs(options.runDir), ...(options.steps ? { steps: options.steps } : {}) });
    } catch (e) {
      if (!(e instanceof NotYetSupported)) throw e;
      blocked.add(stage);
      notRun.push({ what: `stage ${stage}`, why: e.message });
      continue;
    }
    plans.set(stage, plan);
    const fingerprint = planFingerprint(module, plan, options.version);
    if (options.resume) checkResumable(options, plan, fingerprint, log);
    record = { ...record, stages: { ...record.stages, [stage]: fingerprint } };
    writeRunRecord(options.runDir, record);
    ran.push(await STAGE_MODULES[plan.kind]!.run(plan, { ...context, identity: { run: record.id, fingerprint } }));
  }
  const deployed: string[] = [];
  for (const d of module.facts.deploys) {
    const target = d.decl.target;
    if (target.kind !== 'BinaryExpr' || target.op !== '@' || target.right.kind !== 'NameExpr') continue;
    const stage = target.right.name;
    if (options.stage && stage !== options.stage) continue;
    const what = `deploy ${exprName(target.left)} @ ${stage} to ${d.format}`;
    const plan = plans.get(stage);
    if (!plan) {
      notRun.push({ what, why: `stage ${stage} did not run` });
      continue;
    }
    const setting = (name: string): string | null => {
      const t = d.settings.get(name);
      return t?.k === 'str' ? t.value : t?.k === 'symbol' ? t.name : null;
    };
    const result = deploy(plan, d.format, setting('precision') ?? 'fp32', deployFolder(module, d, options.allowWrite ?? []), options.runDir, module);
    if (result.notDone) notRun.push({ what, why: result.notDone });
    else deployed.push(`${what} → ${result.written}`);
  }
  return { ran, deployed, notRun };
}

/** The fingerprint of a planned stage: the recipe and its imports, the data and tokenizer files it reads, seed, steps. */
export function planFingerprint(module: ModuleInfo, plan: StagePlan, version: string): StageFingerprint {
  const settings = plan.settings as { steps?: unknown; seed?: unknown } | null;
  const number = (v: unknown): number | null => (typeof v === 'number' ? v : null);
  const dataFiles = Object.values(plan.data).flatMap((d) => [d.spec.path, ...(d.spec.tokenizer.path ? [d.spec.tokenizer.path] : [])]);
  return stageFingerprint({
    version,
    steps: number(settings?.steps),
    seed: number(settings?.seed),
    sources: recipeSources(module),
    dataFiles,
    baseDir: dirname(module.absPath),
  });
}

/** The recipe file and every file it imports, directly or not, outside the standard library. */
function recipeSources(module: ModuleInfo): string[] {
  const seen = new Set<ModuleInfo>();
  const visit = (m: ModuleInfo): void => {
    if (seen.has(m) || m.isStdlib) return;
    seen.add(m);
    for (const b of m.imports.values()) if (b.kind !== 'unresolved') visit(b.module);
  };
  visit(module);
  return [...seen].map((m) => m.absPath);
}

/**
 * With `--resume`: the stage's latest checkpoint must have been written by what
 * runs now. A difference is refused naming it, or with `allowChanged` continued
 * with a warning naming it.
 */
function checkResumable(options: PipelineOptions, plan: StagePlan, now: StageFingerprint, log: (line: string) => void): void {
  const dir = latestCheckpointDir(options.runDir, plan.stage);
  if (!dir) return;
  const trainer = readTrainerState(dir, { stage: plan.stage });
  // Checkpoints of older versions have no fingerprint: their seed and steps are still compared.
  const before: Partial<StageFingerprint> = trainer.fingerprint ?? { steps: trainer.steps, seed: trainer.seed };
  const changes = fingerprintChanges(before, now);
  if (changes.length === 0) return;
  const what = `stage ${plan.stage}: the checkpoint ${dir} was written by a different run setup: ${changes.join('; ')}`;
  if (!options.allowChanged) {
    throw new RunFolderError(`${what}. Resuming would not reproduce the run; give --allow-changed to continue anyway, --fresh to archive the run and start over, or --out DIR for another folder`);
  }
  log(`warning: ${what}; continuing anyway (--allow-changed)`);
}

function exprName(e: Expression): string {
  return e.kind === 'NameExpr' ? e.name : '…';
}

/** Writes one deploy's artifacts into `out` from the stage's latest checkpoint. */
function deploy(plan: StagePlan, format: string, precision: string, out: string, runDir: string, module: ModuleInfo): { notDone: string | null; written: string } {
  const target = DEPLOY_TARGETS[format];
  if (!target) return { notDone: `no module writes ${format} artifacts`, written: '' };
  const dir = latestCheckpointDir(runDir, plan.stage);
  if (!dir) return { notDone: `no checkpoint of stage ${plan.stage} in ${runDir}`, written: '' };
  const own = plan.params.filter((p) => p.model === plan.model);
  const weights = loadCheckpoint(dir, own, null).params;
  const output = target.deploy({ format, model: plan.model, stage: plan.stage, precision, graphs: plan.graphs, weights, module });
  if (output.notDone) return { notDone: output.notDone, written: '' };
  makeDirs(out);
  for (const f of output.files) writeFileAtomic(join(out, f.name), f.bytes);
  return { notDone: null, written: `${displayPath(join(out, output.files[0]!.name))}${output.description ? ` — ${output.description}` : ''}` };
}

/**
 * Where a deploy writes: its `out`, relative to the recipe's folder (as data
 * paths are). A recipe may write only inside its project folder (the nearest
 * folder with a package.json, else its own) unless `--allow-write` names the
 * place: `out = "/"` or `"/etc"` in a recipe someone else wrote is refused.
 */
export function deployFolder(module: ModuleInfo, d: ModuleInfo['facts']['deploys'][number], allowWrite: readonly string[]): string {
  const setting = d.settings.get('out');
  const out = setting?.k === 'str' ? setting.value : null;
  const dir = dirname(module.absPath);
  const folder = resolve(dir, out ?? '.');
  const project = projectFolder(dir);
  const allowed = [project, ...allowWrite.map((p) => resolve(p))];
  if (!allowed.some((root) => folder === root || isInside(folder, root))) {
    const where = out !== null ? `"${out}"` : 'its out';
    throw new WriteRefusedError(
      `${module.path}:${d.decl.loc.line}: the deploy writes to ${where} (${folder}), outside the recipe's project folder ${project}; give --allow-write ${folder} to allow it`,
    );
  }
  return folder;
}

function isInside(path: string, folder: string): boolean {
  const rel = relative(folder, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}
