/** Writing a compiled stage (its ONNX files and manifest.json) into a folder, atomically file by file. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { compilePlan, type Compiled } from '../../targets/onnx/compile.js';
import type { StagePlan } from '../ir/lower/plan.js';
import { writeFileAtomic, writeJsonAtomic } from '../runtime/atomic.js';

export function writeCompiled(compiled: Compiled, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const f of compiled.files) writeFileAtomic(join(dir, f.name), f.bytes);
  writeJsonAtomic(join(dir, 'manifest.json'), compiled.manifest);
}

/** The folder a stage's compiled models are written to in a run folder. */
export function stageModelDir(runDir: string, stage: string): string {
  return join(runDir, stage, 'model');
}

/** Compiles a stage's plan and writes it into the stage's model folder of the run folder. */
export function compileIntoRun<S>(plan: StagePlan<S>, context: { readonly runDir: string; readonly recipe: string; readonly version: string }): { compiled: Compiled<S>; modelDir: string } {
  const modelDir = stageModelDir(context.runDir, plan.stage);
  const compiled = compilePlan(plan, context.recipe, { producerVersion: context.version });
  writeCompiled(compiled, modelDir);
  return { compiled, modelDir };
}
