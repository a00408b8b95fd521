/**
 * `train` stages: lowered to a train-step graph (forward, loss, gradients,
 * clipping, optimizer update), an eval graph and an inference graph, compiled
 * to ONNX and run step after step by the trainer.
 */
import { compilePlan } from '../../targets/onnx/compile.js';
import { lowerTrainStage, type TrainPlan } from '../ir/lower/trainStage.js';
import { sizeOf } from '../ir/tensor.js';
import { availableMemory, predictStageMemory, requireMemory, stageDataBytes } from '../runtime/memoryPlan.js';
import { train, type TrainResult } from '../runtime/trainer.js';
import { stageModelDir, writeCompiled } from './compiled.js';
import type { StageKindModule } from './kind.js';

export const trainStage: StageKindModule<TrainPlan> = {
  kind: 'train',
  plan: (module, stage, context) =>
    lowerTrainStage(module, stage, { ...(context.steps ? { steps: context.steps } : {}), ...(context.stepsForEpochs ? { stepsForEpochs: context.stepsForEpochs } : {}) }),
  run: async (plan, context) => {
    const modelDir = stageModelDir(context.runDir, plan.stage);
    const compiled = compilePlan(plan, context.recipe, { producerVersion: context.version });
    writeCompiled(compiled, modelDir);
    // Before any training: a stage that cannot fit would otherwise die (or swap) mid-run.
    if (!context.force) requireMemory(plan.stage, predictStageMemory(plan, compiled.graphs['train_step']!, stageDataBytes(plan)), availableMemory());
    context.log(`stage ${plan.stage}: ${describePlan(plan)}, ${compiled.manifest.graphs['train_step']!.nodes.onnx} ONNX nodes per step`);
    const result = await train(compiled.manifest, {
      modelDir,
      runDir: context.runDir,
      device: context.device,
      resume: context.resume,
      ...(context.threads ? { threads: context.threads } : {}),
      ...(context.stepsPerRun ? { stepsPerRun: context.stepsPerRun } : {}),
      ...(context.identity ? { identity: context.identity } : {}),
      ...(context.stop ? { stop: context.stop } : {}),
    });
    if (context.resume && result.firstStep === 1) context.log(`note: stage ${plan.stage} had no checkpoint in ${context.runDir} to resume from; it started at step 1`);
    return { stage: plan.stage, summary: summarize(plan.stage, result), checkpoint: result.checkpoint };
  },
};

/** "815,040 trainable parameters (+N frozen), 1000 steps of 16 × 64 tokens". */
export function describePlan(plan: TrainPlan): string {
  const count = (ps: TrainPlan['params']): string => ps.reduce((n, p) => n + sizeOf(p.shape), 0).toLocaleString('en-US');
  const frozen = plan.params.filter((p) => !p.trainable);
  const { steps, batchSize } = plan.settings;
  return `${count(plan.params.filter((p) => p.trainable))} trainable parameters${frozen.length ? ` (+${count(frozen)} frozen)` : ''}, ${steps} steps of ${batchSize} × ${plan.data['train']!.spec.seqLen} tokens`;
}

function summarize(stage: string, r: TrainResult): string {
  if (r.losses.length === 0) return `stage ${stage}: already complete at step ${r.lastStep} (nothing to resume)`;
  const lastEval = r.evals[r.evals.length - 1];
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const tail = r.losses.slice(-Math.min(20, r.losses.length));
  return (
    `stage ${stage}: steps ${r.firstStep}–${r.lastStep} in ${r.totalSeconds.toFixed(1)} s, ${Math.round(r.tokensPerSec).toLocaleString('en-US')} tokens/s; ` +
    `train loss ${r.losses[0]!.toFixed(3)} → ${mean(tail).toFixed(3)} (mean of last ${tail.length})` +
    (lastEval ? `, val loss ${lastEval.loss.toFixed(3)} at step ${lastEval.step}` : '') +
    `\n  checkpoint: ${r.checkpoint}`
  );
}

