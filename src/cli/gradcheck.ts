/**
 * `ptr gradcheck FILE`: the stage's analytic gradients (our autodiff) against
 * central finite differences, both computed by the float64 reference
 * evaluator on a small real batch; prints the worst relative error per
 * parameter and fails above the tolerance.
 */
import { GraphBuilder } from '../ir/builder.js';
import { gradcheck } from '../ir/gradcheck.js';
import { stageLossProblem } from '../ir/lower/stage.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { initialParams } from '../runtime/init.js';
import { openStageData } from '../runtime/datasets.js';
import { fromOrt } from '../runtime/ort.js';
import type { Io } from './io.js';
import { checkedModule, lowerStage } from './pipeline.js';

export interface GradcheckCommandOptions {
  readonly stage?: string;
  readonly batch?: number;
  readonly seq?: number;
  readonly samples?: number;
  readonly tolerance?: number;
  readonly seed?: number;
}

export function runGradcheck(io: Io, file: string, options: GradcheckCommandOptions): number {
  const module = checkedModule(io, file);
  if (!module) return 1;
  const B = options.batch ?? 2;
  const dataset = lowerStage(module, options.stage ?? null, { steps: 1 }).dataset;
  // A text corpus can be cut into short windows; JSONL rows keep their padded length.
  const T = dataset.format === 'text' ? (options.seq ?? 8) : dataset.seqLen!;
  const problem = stageLossProblem(module, options.stage ?? null, B, T);
  problem.build(new GraphBuilder('probe'));
  const seed = options.seed ?? 0;
  const feeds = new Map<string, Tensor>();
  // Weights that would come from another stage's checkpoint are drawn at random: any point will do for a gradient check.
  const drawable = problem.params.map((p) => (p.init.kind === 'checkpoint' || p.init.kind === 'copy' ? { ...p, init: { kind: 'normal' as const, std: 0.02 } } : p));
  for (const [name, data] of initialParams(drawable, seed)) {
    const p = problem.params.find((q) => q.input === name)!;
    // Norm weights start at exactly 1 and biases at 0; a little noise makes every path through them matter.
    feeds.set(name, makeTensor('f32', p.shape, Array.from(data, (v) => v + 0.01 * Math.sin(v * 1e4 + p.input.length))));
  }
  const batch = openStageData({ ...dataset, seqLen: T }, seed).trainBatch(0, B);
  for (const f of problem.batch) feeds.set(f.input, fromOrt(batch[f.input]!));
  const tolerance = options.tolerance ?? 1e-4;
  const results = gradcheck(problem.build, feeds, { samplesPerInput: options.samples ?? 4, seed, floor: 1e-4 });
  const width = Math.max(...results.map((r) => r.name.length));
  io.out(`gradcheck: batch ${B} × ${T}, float64 reference, central differences (eps 1e-6), ${options.samples ?? 4} elements per parameter\n`);
  io.out('error: |analytic - numeric| / max(|analytic|, |numeric|), or the absolute difference where both are below 1e-4\n');
  let failed = 0;
  for (const r of results) {
    const bad = r.maxRelError > tolerance;
    if (bad) failed++;
    io.out(`${bad ? 'FAIL' : 'ok  '}  ${r.name.padEnd(width)}  max rel error ${r.maxRelError.toExponential(2)}  (analytic ${r.worst.analytic.toExponential(4)}, numeric ${r.worst.numeric.toExponential(4)})\n`);
  }
  const worst = Math.max(...results.map((r) => r.maxRelError));
  io.out(`${results.length} parameters, worst relative error ${worst.toExponential(2)} (tolerance ${tolerance})${failed ? `; ${failed} failed` : ''}\n`);
  return failed ? 1 : 0;
}
