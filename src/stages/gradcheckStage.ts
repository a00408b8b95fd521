/**
 * `ptr gradcheck` as a library call: a train stage's analytic gradients (our
 * autodiff) against central finite differences, both from the float64
 * reference evaluator, on a small real batch of the stage's data.
 */
import type { ModuleInfo } from '../check/modules.js';
import { GraphBuilder } from '../ir/builder.js';
import { gradcheck, type GradcheckResult } from '../ir/gradcheck.js';
import { stageLossProblem, type TrainPlan } from '../ir/lower/trainStage.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { openStageData } from '../runtime/datasets.js';
import { initialParams } from '../runtime/init.js';
import { fromOrt } from '../runtime/ort.js';
import { planStage } from './driver.js';

export interface StageGradcheckOptions {
  readonly batch: number;
  /** Window length for text corpora (JSONL rows keep their padded length). */
  readonly seq: number;
  readonly samples: number;
  readonly seed: number;
}

export interface StageGradcheck {
  readonly batch: number;
  readonly seq: number;
  readonly results: readonly GradcheckResult[];
}

export function gradcheckStage(module: ModuleInfo, stage: string, options: StageGradcheckOptions): StageGradcheck {
  const dataset = (planStage(module, stage, { steps: 1 }) as TrainPlan).data['train']!.spec;
  const B = options.batch;
  const T = dataset.format === 'text' ? options.seq : dataset.seqLen!;
  const problem = stageLossProblem(module, stage, B, T);
  problem.build(new GraphBuilder('probe'));
  const feeds = new Map<string, Tensor>();
  // Weights that would come from another stage's checkpoint are drawn at random: any point will do for a gradient check.
  const drawable = problem.params.map((p) => (p.init.kind === 'checkpoint' || p.init.kind === 'copy' ? { ...p, init: { kind: 'normal' as const, std: 0.02 } } : p));
  for (const [name, data] of initialParams(drawable, options.seed)) {
    const p = problem.params.find((q) => q.input === name)!;
    // Norm weights start at exactly 1 and biases at 0; a little noise makes every path through them matter.
    feeds.set(name, makeTensor('f32', p.shape, Array.from(data, (v) => v + 0.01 * Math.sin(v * 1e4 + p.input.length))));
  }
  const batch = openStageData({ ...dataset, seqLen: T }, options.seed).trainBatch(0, B);
  for (const f of problem.batch) feeds.set(f.input, fromOrt(batch[f.input]!));
  return { batch: B, seq: T, results: gradcheck(problem.build, feeds, { samplesPerInput: options.samples, seed: options.seed, floor: 1e-4 }) };
}
