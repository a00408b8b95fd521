/**
 * The pipeline driver: runs a checked recipe's stages in `after` order (or the
 * one asked for), each through its kind's module, then its deploys through
 * their target modules. A stage that cannot run is reported with the reason,
 * and so is every stage and deploy after it; the caller decides the exit code
 * from what did not run (never 0 when something requested did not).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEPLOY_TARGETS } from '../../targets/index.js';
import type { ModuleInfo } from '../check/modules.js';
import type { Expression } from '../language/ast.js';
import type { StagePlan } from '../ir/lower/plan.js';
import { NotYetSupported } from '../ir/lower/values.js';
import { writeFileAtomic } from '../runtime/atomic.js';
import { latestCheckpointDir, loadCheckpoint } from '../runtime/checkpoint.js';
import { DataError, openStageData } from '../runtime/datasets.js';
import { UserError } from '../runtime/errors.js';
import type { PlanContext, RunContext, StageResult } from './kind.js';
import { STAGE_MODULES } from './registry.js';

export interface PipelineOptions extends Omit<RunContext, 'log'> {
  /** Run only this stage (its inputs must exist in the run folder). */
  readonly stage?: string;
  /** Overrides every stage's `steps`. */
  readonly steps?: number;
}

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

export async function runPipeline(module: ModuleInfo, options: PipelineOptions, log: (line: string) => void): Promise<PipelineResult> {
  if (options.stage) requireStage(module, options.stage);
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
    ran.push(await STAGE_MODULES[plan.kind]!.run(plan, context));
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
    const result = deploy(plan, d.format, setting('precision') ?? 'fp32', setting('out')!, options.runDir, module);
    if (result.notDone) notRun.push({ what, why: result.notDone });
    else deployed.push(`${what} → ${result.written}`);
  }
  return { ran, deployed, notRun };
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
  mkdirSync(out, { recursive: true });
  for (const f of output.files) writeFileAtomic(join(out, f.name), f.bytes);
  return { notDone: null, written: `${join(out, output.files[0]!.name)}${output.description ? ` — ${output.description}` : ''}` };
}
