/**
 * `ptr run FILE`: check, compile and train every train stage (in `after`
 * order), then carry out `deploy ... to onnx` declarations.
 */
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ModuleInfo } from '../check/index.js';
import type { TrainPlan } from '../ir/lower/stage.js';
import { latestCheckpointDir, loadCheckpoint } from '../runtime/checkpoint.js';
import { train, type TrainResult } from '../runtime/trainer.js';
import { requireCuda, type Device } from '../runtime/ort.js';
import { writeFileAtomic } from '../runtime/atomic.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { optimize } from '../ir/passes/index.js';
import type { Io } from './io.js';
import { compileStage, writeCompiled } from './compile.js';
import { checkedModule, lowerStage, stagesInOrder } from './pipeline.js';
import { NotYetSupported } from '../ir/lower/values.js';
import { sizeOf } from '../ir/tensor.js';

export interface RunCommandOptions {
  readonly stage?: string;
  readonly out?: string;
  readonly device?: Device;
  readonly resume?: boolean;
  readonly steps?: number;
  readonly threads?: number;
  readonly stepsPerRun?: number;
}

export function defaultRunDir(file: string): string {
  return join('runs', basename(file).replace(/\.pt-recipe$/, ''));
}

export async function runRun(io: Io, file: string, options: RunCommandOptions, version: string): Promise<number> {
  if (options.device === 'cuda') requireCuda();
  const module = checkedModule(io, file);
  if (!module) return 1;
  const runDir = options.out ?? defaultRunDir(file);
  const stages = options.stage ? [options.stage] : stagesInOrder(module);
  const plans = new Map<string, TrainPlan>();
  // Stages this version cannot run, and why; a stage after one of them is skipped too.
  const skipped = new Map<string, string>();
  for (const stage of stages) {
    const blocked = module.stages.get(stage)?.after.find((a) => skipped.has(a.name));
    if (blocked) {
      skipped.set(stage, `it comes after ${blocked.name}`);
      continue;
    }
    let plan: TrainPlan;
    try {
      plan = lowerStage(module, stage, options.steps ? { steps: options.steps } : {});
    } catch (e) {
      if (!(e instanceof NotYetSupported) || options.stage) throw e;
      skipped.set(stage, e.message);
      continue;
    }
    plans.set(stage, plan);
    const modelDir = join(runDir, stage, 'model');
    const compiled = compileStage(plan, file, version);
    writeCompiled(compiled, modelDir);
    const count = (ps: typeof plan.params): string => ps.reduce((n, p) => n + sizeOf(p.shape), 0).toLocaleString('en-US');
    const frozen = plan.params.filter((p) => !p.trainable);
    const params = `${count(plan.params.filter((p) => p.trainable))} trainable parameters${frozen.length ? ` (+${count(frozen)} frozen)` : ''}`;
    io.err(`stage ${stage}: ${params}, ${plan.steps} steps of ${plan.batchSize} × ${plan.dataset.seqLen} tokens, ${compiled.manifest.graphs.train_step.nodes.onnx} ONNX nodes per step\n`);
    const result = await train(compiled.manifest, { modelDir, runDir, device: options.device ?? 'cpu', resume: options.resume ?? false, ...(options.threads ? { threads: options.threads } : {}), ...(options.stepsPerRun ? { stepsPerRun: options.stepsPerRun } : {}) });
    if (options.resume && result.firstStep === 1) io.err(`note: stage ${stage} had no checkpoint in ${runDir} to resume from; it started at step 1\n`);
    io.out(summary(stage, result));
  }
  for (const [stage, why] of skipped) io.out(`skipped stage ${stage}: ${why}\n`);
  for (const d of deploys(module)) {
    const plan = plans.get(d.stage);
    if (d.format !== 'onnx') {
      io.out(`skipped deploy of stage ${d.stage} to ${d.format}: this version exports onnx only\n`);
      continue;
    }
    if (!plan) {
      io.out(`skipped deploy of stage ${d.stage}: the stage did not run\n`);
      continue;
    }
    io.out(deployOnnx(plan, runDir, d.out, d.precision));
  }
  io.out(`run folder: ${runDir}/ (metrics.jsonl, checkpoints/)\n`);
  return 0;
}

function summary(stage: string, r: TrainResult): string {
  if (r.losses.length === 0) return `stage ${stage}: already complete at step ${r.lastStep} (nothing to resume)\n`;
  const lastEval = r.evals[r.evals.length - 1];
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const tail = r.losses.slice(-Math.min(20, r.losses.length));
  return (
    `stage ${stage}: steps ${r.firstStep}–${r.lastStep} in ${r.totalSeconds.toFixed(1)} s, ${Math.round(r.tokensPerSec).toLocaleString('en-US')} tokens/s; ` +
    `train loss ${r.losses[0]!.toFixed(3)} → ${mean(tail).toFixed(3)} (mean of last ${tail.length})` +
    (lastEval ? `, val loss ${lastEval.loss.toFixed(3)} at step ${lastEval.step}` : '') +
    `\n  checkpoint: ${r.checkpoint}\n`
  );
}

interface DeployRequest {
  readonly format: string;
  readonly stage: string;
  readonly out: string;
  readonly precision: string;
}

function deploys(module: ModuleInfo): DeployRequest[] {
  const out: DeployRequest[] = [];
  for (const d of module.recipe.declarations) {
    if (d.kind !== 'DeployDecl') continue;
    if (d.target.kind !== 'BinaryExpr' || d.target.op !== '@' || d.target.right.kind !== 'NameExpr') continue;
    const setting = (name: string): string | null => {
      const s = d.settings.find((x) => x.name.name === name);
      if (!s) return null;
      return s.value.kind === 'StringLiteral' ? s.value.value : s.value.kind === 'NameExpr' ? s.value.name : null;
    };
    out.push({ format: d.format.name, stage: d.target.right.name, out: setting('out') ?? join('out', d.target.right.name), precision: setting('precision') ?? 'fp32' });
  }
  return out;
}

/** The inference graph with the stage's trained weights as initializers: model.onnx in `out`. */
export function deployOnnx(plan: TrainPlan, runDir: string, out: string, precision: string): string {
  if (precision !== 'fp32') return `deploy ${plan.model} @ ${plan.stage}: precision ${precision} is not implemented yet; skipped\n`;
  const dir = latestCheckpointDir(runDir, plan.stage);
  if (!dir) return `deploy ${plan.model} @ ${plan.stage}: no checkpoint in ${runDir}; run the stage first\n`;
  const ck = loadCheckpoint(dir, plan.params.filter((p) => p.model === plan.model), null);
  const { graph } = optimize(plan.graphs.inference);
  const model = emitModel(graph, { initializers: ck.params, externalDataFile: 'model.onnx.data', docString: `${plan.model} @ ${plan.stage}` });
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, 'model.onnx'), model.bytes);
  if (model.externalData) writeFileAtomic(join(out, 'model.onnx.data'), model.externalData);
  return `deploy ${plan.model} @ ${plan.stage} → ${join(out, 'model.onnx')} (input ${plan.inference.input}: i64[${plan.inference.shape.join(', ')}], output ${plan.inference.output})\n`;
}
