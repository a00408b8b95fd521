/**
 * `ptr gradcheck FILE`: the stage's analytic gradients (our autodiff) against
 * central finite differences, both computed by the float64 reference
 * evaluator on a small real batch; prints the worst relative error per
 * parameter and fails above the tolerance.
 */
import { gradcheckStage } from '../stages/gradcheckStage.js';
import type { Io } from './io.js';
import { checkedModule, chosenStage } from './pipeline.js';

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
  const seed = options.seed ?? 0;
  const { batch: B, seq: T, results } = gradcheckStage(module, chosenStage(module, options.stage), { batch: options.batch ?? 2, seq: options.seq ?? 8, samples: options.samples ?? 4, seed });
  const tolerance = options.tolerance ?? 1e-4;
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
