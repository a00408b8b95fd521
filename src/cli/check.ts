/**
 * `ptr check FILE...`: parse, resolve and type-check recipes; print every
 * diagnostic with an excerpt and a caret, then one summary line.
 */
import { checkFiles } from '../check/index.js';
import { diagnosticToJson } from '../language/diagnostics.js';
import { expandPaths, renderDiagnostics, summaryLine, tally, type Io } from './io.js';

/** Options of `ptr check`, as commander parses them. */
export interface CheckCommandOptions {
  readonly json?: boolean;
  readonly maxErrors?: number;
}

/** Runs `ptr check`; returns the exit code (0 ok, 1 errors). */
export function runCheck(io: Io, paths: readonly string[], options: CheckCommandOptions): number {
  const files = expandPaths(paths);
  const result = checkFiles(files, { ...(options.maxErrors !== undefined ? { maxErrors: options.maxErrors } : {}) });
  const { errors, warnings } = tally(result.diagnostics);
  if (options.json) {
    const perFile = files.map((path) => {
      const own = result.diagnostics.filter((d) => d.span.file === path);
      return { path, ...tally(own) };
    });
    const doc = {
      ok: errors === 0,
      errors,
      warnings,
      truncated: result.truncated,
      files: perFile,
      diagnostics: result.diagnostics.map(diagnosticToJson),
    };
    io.out(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const rendered = renderDiagnostics(io, result.diagnostics, result.sources);
    if (rendered) io.out(`${rendered}\n`);
    io.out(summaryLine(io, result.diagnostics, files.length, result.truncated));
  }
  return errors > 0 ? 1 : 0;
}
