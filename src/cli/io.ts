/**
 * Where the CLI writes, whether it may colour its output, and the small
 * helpers every command shares: reading a source file (a failure is a
 * diagnostic, never an exception), expanding folders into recipe files, and
 * rendering diagnostics with a summary line.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileStartSpan, formatDiagnostics, type Diagnostic, type SourceFile } from '../language/diagnostics.js';

/** The output side of a CLI run; tests and the real process provide different ones. */
export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Whether stdout may carry ANSI colours. */
  readonly color: boolean;
}

/**
 * Colour only on a terminal, and never when NO_COLOR is set to a non-empty
 * value (the no-color.org convention).
 */
export function wantsColor(stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

/** The real process's streams. */
export function processIo(): Io {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    color: wantsColor(process.stdout),
  };
}

const ANSI = { red: '31', yellow: '33', green: '32', cyan: '36', bold: '1', dim: '2' } as const;

/** Wraps text in an ANSI style when colour is on. */
export function paint(io: Io, style: keyof typeof ANSI, text: string): string {
  return io.color ? `\u001b[${ANSI[style]}m${text}\u001b[0m` : text;
}

/** A mistake in how the CLI was called: reported in one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The extension of recipe files, used when a folder is given instead of files. */
export const RECIPE_EXTENSION = '.pt-recipe';

/**
 * Replaces each folder argument by the recipe files below it (sorted, skipping
 * node_modules and dot-folders); files and missing paths pass through, so a
 * missing path still becomes a file-not-found diagnostic later. A folder
 * without any recipe is a usage error.
 */
export function expandPaths(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) {
      out.push(p);
      continue;
    }
    const found = recipesUnder(p);
    if (found.length === 0) throw new UsageError(`no ${RECIPE_EXTENSION} files under ${p}`);
    out.push(...found);
  }
  return out;
}

/** Every recipe file below a folder, sorted, skipping hidden folders and node_modules. */
export function recipesUnder(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.') || e.name === 'node_modules') continue;
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.isFile() && e.name.endsWith(RECIPE_EXTENSION)) found.push(path);
    }
  };
  walk(dir);
  return found;
}


/**
 * Reads a recipe as UTF-8 text. Only regular files are read: a folder or a
 * device (`/dev/zero` would never end) is reported like a missing file.
 */
export function readSource(path: string): { text: string } | { diagnostic: Diagnostic } {
  try {
    if (!statSync(path).isFile()) return { diagnostic: unreadable(path, 'not a regular file') };
    return { text: readFileSync(path, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : ((e as Error).message ?? String(e));
    return { diagnostic: unreadable(path, reason) };
  }
}

function unreadable(path: string, reason: string): Diagnostic {
  // The same code the checker uses for entry files it cannot read.
  return { code: 'file-not-found', severity: 'error', message: `cannot read ${path}: ${reason}`, span: fileStartSpan(path), related: [], hint: null };
}

/** Counts errors and warnings. */
export function tally(diagnostics: readonly Diagnostic[]): { errors: number; warnings: number } {
  let errors = 0;
  for (const d of diagnostics) if (d.severity === 'error') errors++;
  return { errors, warnings: diagnostics.length - errors };
}

/** `1 file`, `2 files`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Diagnostics rendered with excerpt and caret (see formatDiagnostics), with
 * severities and carets coloured when colour is on. Ends with a newline, or
 * is empty when there is nothing to show.
 */
export function renderDiagnostics(io: Io, diagnostics: readonly Diagnostic[], sources: ReadonlyMap<string, SourceFile>): string {
  if (diagnostics.length === 0) return '';
  const text = formatDiagnostics(diagnostics, sources);
  if (!io.color) return `${text}\n`;
  // formatDiagnostics produces plain text; colour is a presentation concern of the terminal, so it is added here.
  const lines = text.split('\n').map((line) => {
    const head = /^(.*?:\d+:\d+: )(error|warning)(\[[^\]]*\]: )(.*)$/.exec(line);
    if (head) {
      const style = head[2] === 'error' ? 'red' : 'yellow';
      return `${head[1]}${paint(io, style, paint(io, 'bold', head[2]!))}${paint(io, 'bold', `${head[3]}${head[4]}`)}`;
    }
    const caret = /^(\s*\| *)([\s]*)(\^+)$/.exec(line);
    if (caret) return `${paint(io, 'cyan', caret[1]!)}${caret[2]}${paint(io, 'red', caret[3]!)}`;
    const gutter = /^(\s*\d*\s*\|)(.*)$/.exec(line);
    if (gutter) return `${paint(io, 'cyan', gutter[1]!)}${gutter[2]}`;
    const note = /^(\s*= )(note|hint)(:.*)$/.exec(line);
    if (note) return `${paint(io, 'cyan', note[1]!)}${paint(io, 'bold', note[2]!)}${note[3]}`;
    return line;
  });
  return `${lines.join('\n')}\n`;
}

/**
 * The closing line of a run: `ok: 3 files checked`, `2 errors in 1 file`,
 * `1 error, 1 warning in 2 files`; notes when the cap cut the list short.
 */
export function summaryLine(io: Io, diagnostics: readonly Diagnostic[], fileCount: number, truncated: boolean, verb = 'checked'): string {
  const { errors, warnings } = tally(diagnostics);
  const more = truncated ? ' (more were found; raise --max-errors to see them)' : '';
  if (errors === 0) {
    const w = warnings > 0 ? ` (${plural(warnings, 'warning')})` : '';
    return `${paint(io, 'green', 'ok')}: ${plural(fileCount, 'file')} ${verb}${w}${more}\n`;
  }
  const files = new Set(diagnostics.map((d) => d.span.file)).size;
  const counts = [plural(errors, 'error'), ...(warnings > 0 ? [plural(warnings, 'warning')] : [])].join(', ');
  return `${paint(io, 'red', counts)} in ${plural(files, 'file')}${more}\n`;
}

