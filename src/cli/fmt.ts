/**
 * `ptr fmt [--check] FILE...`: rewrite recipes in the canonical layout.
 * A file with syntax errors is never touched; a rewrite is atomic (temp file
 * in the same folder, then rename), so an interrupted run leaves either the
 * old or the new text, never half of one.
 */
import { realpathSync, statSync } from 'node:fs';
import { stripLocations, type Recipe } from '../language/ast.js';
import { DiagnosticBag, SourceFile } from '../language/diagnostics.js';
import { parseRecipe } from '../language/parser.js';
import { formatRecipe } from '../language/printer.js';
import { writeFileAtomic } from '../runtime/atomic.js';
import { expandPaths, paint, plural, readSource, renderDiagnostics, type Io } from './io.js';

/** Options of `ptr fmt`, as commander parses them. */
export interface FmtCommandOptions {
  readonly check?: boolean;
}

/** Raised when the formatter's output would not parse back to the same tree: a formatter bug, never the user's. */
export class FormatterMismatchError extends Error {
  override readonly name = 'FormatterMismatchError';
}

type Outcome = 'unchanged' | 'changed' | 'failed';

/** Runs `ptr fmt`; returns the exit code (0 ok, 1 syntax errors or, with --check, files that would change). */
export function runFmt(io: Io, paths: readonly string[], options: FmtCommandOptions): number {
  const files = expandPaths(paths);
  const counts: Record<Outcome, number> = { unchanged: 0, changed: 0, failed: 0 };
  for (const path of files) {
    const outcome = formatOne(io, path, options.check === true);
    counts[outcome]++;
  }
  if (options.check) {
    if (counts.changed > 0) io.err(`${plural(counts.changed, 'file')} would be reformatted\n`);
  } else if (files.length > 1 || counts.changed > 0) {
    io.out(`${paint(io, 'green', 'ok')}: ${plural(counts.changed, 'file')} formatted, ${counts.unchanged} already formatted\n`);
  }
  if (counts.failed > 0) io.err(`${plural(counts.failed, 'file')} not formatted because of errors\n`);
  return counts.failed > 0 || (options.check === true && counts.changed > 0) ? 1 : 0;
}

function formatOne(io: Io, path: string, checkOnly: boolean): Outcome {
  const read = readSource(path);
  if ('diagnostic' in read) {
    io.err(`${renderDiagnostics(io, [read.diagnostic], new Map())}\n`);
    return 'failed';
  }
  const text = read.text;
  const bag = new DiagnosticBag();
  const recipe = parseRecipe(text, path, bag);
  if (bag.hasErrors) {
    io.err(`${renderDiagnostics(io, bag.sorted(), new Map([[path, new SourceFile(path, text)]]))}\n`);
    return 'failed';
  }
  const formatted = formatRecipe(recipe, text);
  if (formatted === text) return 'unchanged';
  assertSameMeaning(path, recipe, formatted);
  if (checkOnly) {
    io.out(`${path}\n`);
    return 'changed';
  }
  try {
    writeAtomically(path, formatted);
  } catch (e) {
    io.err(`${paint(io, 'red', 'error')}: cannot write ${path}: ${writeFailure(e)}\n`);
    return 'failed';
  }
  io.out(`formatted ${path}\n`);
  return 'changed';
}

/**
 * Guards the user's files against formatter bugs: the new text must parse
 * without errors to the same tree (locations aside) with the same comments.
 */
function assertSameMeaning(path: string, before: Recipe, formatted: string): void {
  const bag = new DiagnosticBag();
  const after = parseRecipe(formatted, path, bag);
  const comments = (r: Recipe): string[] => r.comments.map((c) => c.text.trimEnd());
  const same =
    !bag.hasErrors &&
    JSON.stringify(stripLocations(before)) === JSON.stringify(stripLocations(after)) &&
    JSON.stringify(comments(before)) === JSON.stringify(comments(after));
  if (!same) {
    const why = bag.hasErrors ? `the formatted text does not parse (${bag.sorted()[0]!.message})` : 'the formatted text parses to a different tree';
    throw new FormatterMismatchError(`formatting ${path} would change it: ${why}; the file was left untouched`);
  }
}

/** Rewrites the file atomically; keeps its permission bits and follows symlinks (the link stays a link). */
function writeAtomically(path: string, text: string): void {
  const target = realpathSync(path);
  writeFileAtomic(target, text, { mode: statSync(target).mode & 0o7777 });
}

function writeFailure(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied' : (err.message ?? String(e));
}
