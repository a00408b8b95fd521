/**
 * `ptr compile FILE -o DIR`: lower a train stage to ONNX (train_step, eval,
 * inference) and write them with manifest.json. `ptr ir FILE`: print a
 * stage's IR in its textual form.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { printGraph } from '../ir/printer.js';
import { optimize } from '../ir/passes/index.js';
import { writeFileAtomic, writeJsonAtomic } from '../runtime/atomic.js';
import { compilePlan, type Compiled } from '../../targets/onnx/compile.js';
import type { TrainPlan } from '../ir/lower/stage.js';
import { initialParams } from '../runtime/init.js';
import type { Io } from './io.js';
import { checkedModule, lowerStage } from './pipeline.js';
import { sizeOf } from '../ir/tensor.js';

export interface CompileCommandOptions {
  readonly out: string;
  readonly stage?: string;
  readonly steps?: number;
}

/** Writes the compiled files and the manifest into `dir`. */
export function writeCompiled(compiled: Compiled, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const f of compiled.files) writeFileAtomic(join(dir, f.name), f.bytes);
  writeJsonAtomic(join(dir, 'manifest.json'), compiled.manifest);
}

export function compileStage(plan: TrainPlan, recipe: string, version: string, inferenceWeights?: ReadonlyMap<string, Float32Array>): Compiled {
  return compilePlan(plan, recipe, { producerVersion: version, ...(inferenceWeights ? { inferenceWeights } : {}) });
}

/** The trained model's initial weights, when they do not come from another stage's checkpoint. */
function initialWeights(plan: TrainPlan): Map<string, Float32Array> | null {
  const own = plan.params.filter((p) => p.model === plan.model);
  if (own.some((p) => p.init.kind === 'checkpoint' || p.init.kind === 'copy')) return null;
  return initialParams(own, plan.seed);
}

export function runCompile(io: Io, file: string, options: CompileCommandOptions, version: string): number {
  const t0 = performance.now();
  const module = checkedModule(io, file);
  if (!module) return 1;
  const plan = lowerStage(module, options.stage ?? null, options.steps ? { steps: options.steps } : {});
  // inference.onnx carries the initial weights (seeded), so it runs on its own.
  const weights = initialWeights(plan);
  const compiled = compileStage(plan, file, version, weights ?? undefined);
  writeCompiled(compiled, options.out);
  if (!weights) io.out(`note: ${plan.model}'s weights come from another stage's checkpoint; inference.onnx takes them as inputs\n`);
  const ms = performance.now() - t0;
  for (const r of compiled.passes) {
    io.out(`${r.graph.padEnd(11)} ${String(r.before).padStart(6)} IR nodes → ${String(r.after).padStart(6)} after ${r.perPass.map((p) => `${p.pass} ${p.nodes}`).join(', ')}\n`);
  }
  const params = plan.params.reduce((n, p) => n + sizeOf(p.shape), 0);
  io.out(`compiled stage ${plan.stage} (${params.toLocaleString('en-US')} parameters) to ${options.out}/ in ${ms.toFixed(0)} ms: ${compiled.files.map((f) => f.name).join(', ')}, manifest.json\n`);
  return 0;
}

export interface IrCommandOptions {
  readonly stage?: string;
  readonly graph?: 'train_step' | 'eval' | 'inference';
  readonly optimized?: boolean;
}

export function runIr(io: Io, file: string, options: IrCommandOptions): number {
  const module = checkedModule(io, file);
  if (!module) return 1;
  const plan = lowerStage(module, options.stage ?? null);
  const which = options.graph ?? 'train_step';
  const graph = which === 'train_step' ? plan.graphs.trainStep : which === 'eval' ? plan.graphs.eval : plan.graphs.inference;
  if (!graph) {
    io.err(`stage ${plan.stage} has no eval graph (it has no 'eval every')\n`);
    return 1;
  }
  io.out(printGraph(options.optimized ? optimize(graph).graph : graph));
  return 0;
}
