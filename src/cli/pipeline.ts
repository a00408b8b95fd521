/**
 * The front half shared by `ptr compile`, `ptr ir`, `ptr run`, `ptr sample`
 * and `ptr gradcheck`: check the recipe (printing diagnostics and stopping on
 * errors), then lower the requested train stage.
 */
import { checkFiles, type ModuleInfo } from '../check/index.js';
import { lowerTrainStage, type StageOptions, type TrainPlan } from '../ir/lower/stage.js';
import { openStageData } from '../runtime/datasets.js';
import { renderDiagnostics, summaryLine, tally, type Io } from './io.js';

/** Checks a recipe; prints its diagnostics and returns null when it has errors. */
export function checkedModule(io: Io, file: string): ModuleInfo | null {
  const result = checkFiles([file]);
  if (tally(result.diagnostics).errors > 0) {
    const rendered = renderDiagnostics(io, result.diagnostics, result.sources);
    if (rendered) io.err(`${rendered}\n`);
    io.err(summaryLine(io, result.diagnostics, 1, result.truncated));
    return null;
  }
  return result.entryModules[0] ?? null;
}

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

/** Steps for `epochs = N`: examples per epoch of the training split, times N, over the batch size. */
const stepsForEpochs: NonNullable<StageOptions['stepsForEpochs']> = (dataset, epochs, batch) =>
  Math.max(1, Math.ceil((openStageData(dataset, 0).examplesPerEpoch * epochs) / batch));

export function lowerStage(module: ModuleInfo, stage: string | null, options: StageOptions = {}): TrainPlan {
  return lowerTrainStage(module, stage, { stepsForEpochs, ...options });
}
