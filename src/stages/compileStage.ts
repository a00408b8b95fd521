/**
 * `ptr compile` and `ptr ir` as library calls: plan a stage, compile it to
 * ONNX files and a manifest (the inference graph carrying the seeded initial
 * weights when they do not come from another stage), or give one of its graphs.
 */
import { compilePlan, type Compiled } from '../../targets/onnx/compile.js';
import type { ModuleInfo } from '../check/modules.js';
import type { Graph } from '../ir/graph.js';
import type { StagePlan } from '../ir/lower/plan.js';
import { optimize } from '../ir/passes/index.js';
import { initialParams } from '../runtime/init.js';
import { UserError } from '../runtime/errors.js';
import { writeCompiled } from './compiled.js';
import { planStage } from './driver.js';

export interface CompiledStage {
  readonly plan: StagePlan;
  readonly compiled: Compiled;
  /** Whether inference.onnx holds the initial weights (else they come from another stage's checkpoint and are inputs). */
  readonly weightsEmbedded: boolean;
}

export function compileStageTo(module: ModuleInfo, stage: string, outDir: string, options: { recipe: string; version: string; steps?: number }): CompiledStage {
  const plan = planStage(module, stage, options.steps ? { steps: options.steps } : {});
  const weights = initialWeights(plan);
  const compiled = compilePlan(plan, options.recipe, { producerVersion: options.version, ...(weights ? { weights: { graph: 'inference', values: weights } } : {}) });
  writeCompiled(compiled, outDir);
  return { plan, compiled, weightsEmbedded: weights !== null };
}

/** The trained model's initial weights, when they do not come from another stage's checkpoint. */
function initialWeights(plan: StagePlan): Map<string, Float32Array> | null {
  if (!plan.graphs['inference']) return null;
  const own = plan.params.filter((p) => p.model === plan.model);
  if (own.some((p) => p.init.kind === 'checkpoint' || p.init.kind === 'copy')) return null;
  return initialParams(own, (plan.settings as { seed?: number }).seed ?? 0);
}

/** One graph of a stage (optionally after the optimisation passes), for `ptr ir`. */
export function stageGraph(module: ModuleInfo, stage: string, graph: string, optimized: boolean): Graph {
  const plan = planStage(module, stage, { steps: 1 });
  const g = plan.graphs[graph];
  if (!g) throw new UserError(`stage ${plan.stage} has no ${graph} graph (it has ${Object.keys(plan.graphs).join(', ')})${graph === 'eval' ? "; add 'eval every N on DATASET'" : ''}`);
  return optimized ? optimize(g).graph : g;
}
