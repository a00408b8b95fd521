/**
 * `ptr plan FILE`: what running the recipe will take, before it runs — per stage,
 * the predicted peak memory and its parts (weights, gradients, optimizer state,
 * activations from the step graph's static shapes, data), against the memory
 * available now.
 */
import { NotYetSupported } from '../ir/lower/values.js';
import { availableMemory, formatBytes, predictStageMemory, stageDataBytes } from '../runtime/memoryPlan.js';
import { planStage, stagesInOrder, stepsForEpochs } from '../stages/driver.js';
import { compilePlan } from '../../targets/onnx/compile.js';
import type { Io } from './io.js';
import { checkedModule } from './pipeline.js';

export interface PlanCommandOptions {
  readonly stage?: string;
  readonly steps?: number;
}

/** Prints the table; exit 0 (1 when the recipe has errors). */
export function runPlan(io: Io, file: string, options: PlanCommandOptions): number {
  const module = checkedModule(io, file);
  if (!module) return 1;
  const available = availableMemory();
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const stage of options.stage ? [options.stage] : stagesInOrder(module)) {
    let plan;
    try {
      plan = planStage(module, stage, { stepsForEpochs: stepsForEpochs(), ...(options.steps ? { steps: options.steps } : {}) });
    } catch (e) {
      if (!(e instanceof NotYetSupported)) throw e;
      notes.push(`stage ${stage}: not planned: ${e.message}`);
      continue;
    }
    const step = plan.graphs['train_step'] ? compilePlan(plan, file).graphs['train_step'] : undefined;
    if (!step) {
      notes.push(`stage ${stage}: a ${plan.kind} stage; no step graph to predict from`);
      continue;
    }
    const p = predictStageMemory(plan, step, stageDataBytes(plan));
    rows.push([
      stage,
      formatBytes(p.params),
      formatBytes(p.grads),
      formatBytes(p.optimizer + p.stepOutputs),
      formatBytes(p.activations),
      formatBytes(p.data),
      formatBytes(p.runtime),
      formatBytes(p.total),
      p.total > available ? 'more than available' : '',
    ]);
  }
  const header = ['stage', 'params', 'grads', 'optimizer + outputs', 'activations', 'data', 'runtime', 'predicted peak', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  io.out(`${line(header)}\n`);
  for (const r of rows) io.out(`${line(r)}\n`);
  for (const n of notes) io.out(`${n}\n`);
  io.out(`available now: ${formatBytes(available)} (ptr run refuses a stage predicted to need more, unless --force)\n`);
  return 0;
}
