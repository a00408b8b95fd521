/**
 * The front half shared by `ptr compile`, `ptr ir`, `ptr run`, `ptr sample`
 * and `ptr gradcheck`: check the recipe, printing diagnostics and stopping on
 * errors.
 */
import { checkFiles, type ModuleInfo } from '../check/index.js';
import { UserError } from '../runtime/errors.js';
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

/** The stage a command works on: the one named, else the recipe's first. */
export function chosenStage(module: ModuleInfo, stage: string | undefined): string {
  const first = [...module.stages.keys()][0];
  if (stage === undefined && first === undefined) throw new UserError(`${module.path} has no stage`);
  return stage ?? first!;
}
