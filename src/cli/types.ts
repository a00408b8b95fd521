/**
 * `ptr types FILE...`: what the checker inferred, one line per declaration
 * (`line  kind name: type`), followed by any diagnostics.
 */
import { checkFiles, type DeclarationSummary } from '../check/index.js';
import { diagnosticToJson } from '../language/diagnostics.js';
import { expandPaths, paint, renderDiagnostics, summaryLine, tally, type Io } from './io.js';

/** Options of `ptr types`, as commander parses them. */
export interface TypesCommandOptions {
  readonly json?: boolean;
  readonly maxErrors?: number;
}

/** Runs `ptr types`; returns the exit code (0 ok, 1 errors). */
export function runTypes(io: Io, paths: readonly string[], options: TypesCommandOptions): number {
  const files = expandPaths(paths);
  const result = checkFiles(files, { ...(options.maxErrors !== undefined ? { maxErrors: options.maxErrors } : {}) });
  const { errors } = tally(result.diagnostics);
  if (options.json) {
    const doc = { declarations: result.declarations, diagnostics: result.diagnostics.map(diagnosticToJson) };
    io.out(`${JSON.stringify(doc, null, 2)}\n`);
    return errors > 0 ? 1 : 0;
  }
  const byFile = new Map<string, DeclarationSummary[]>();
  for (const d of result.declarations) {
    const list = byFile.get(d.file) ?? [];
    list.push(d);
    byFile.set(d.file, list);
  }
  const blocks: string[] = [];
  for (const [file, decls] of byFile) {
    const width = Math.max(...decls.map((d) => String(d.line).length));
    const lines = decls.map((d) => {
      const name = d.name ? ` ${paint(io, 'bold', d.name)}` : '';
      return `${String(d.line).padStart(width)}  ${paint(io, 'cyan', d.declKind)}${name}: ${d.type}`;
    });
    // A header per file only when several are shown, so the common one-file case stays exactly `line  kind name: type`.
    blocks.push(byFile.size > 1 ? [`${paint(io, 'dim', `# ${file}`)}`, ...lines].join('\n') : lines.join('\n'));
  }
  if (blocks.length > 0) io.out(`${blocks.join('\n\n')}\n`);
  const rendered = renderDiagnostics(io, result.diagnostics, result.sources);
  const sep = blocks.length > 0 ? '\n' : '';
  if (rendered) io.out(`${sep}${rendered}\n${summaryLine(io, result.diagnostics, files.length, result.truncated)}`);
  return errors > 0 ? 1 : 0;
}
