/**
 * Diagnostics are data: a stable kebab-case code, a message, a primary span,
 * optional related spans and a hint. Phases report into a `DiagnosticBag`,
 * never throw; the CLI renders them with a source excerpt and a caret.
 */
import type { Span } from './ast.js';

export type Severity = 'error' | 'warning';

export interface RelatedInfo {
  readonly message: string;
  readonly span: Span;
}

export interface Diagnostic {
  readonly code: string;
  readonly severity: Severity;
  readonly message: string;
  readonly span: Span;
  readonly related: readonly RelatedInfo[];
  readonly hint: string | null;
}

export interface DiagnosticOptions {
  readonly related?: readonly RelatedInfo[];
  readonly hint?: string | null;
  readonly severity?: Severity;
}

/** Collects diagnostics, dropping exact duplicates and stopping at `maxErrors`. */
export class DiagnosticBag {
  readonly items: Diagnostic[] = [];
  private readonly seen = new Set<string>();
  /** Set once the cap was hit, so the renderer can say that more were suppressed. */
  truncated = false;

  constructor(readonly maxErrors = 200) {}

  report(code: string, message: string, span: Span, options: DiagnosticOptions = {}): void {
    const key = `${span.file}:${span.start}:${code}:${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.items.length >= this.maxErrors) {
      this.truncated = true;
      return;
    }
    this.items.push({
      code,
      severity: options.severity ?? 'error',
      message,
      span,
      related: options.related ?? [],
      hint: options.hint ?? null,
    });
  }

  get errorCount(): number {
    return this.items.filter((d) => d.severity === 'error').length;
  }

  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === 'error');
  }

  /** Diagnostics ordered by file, then position, then code — a stable order for output and tests. */
  sorted(): Diagnostic[] {
    return [...this.items].sort(
      (a, b) =>
        a.span.file.localeCompare(b.span.file) ||
        a.span.start - b.span.start ||
        a.code.localeCompare(b.code) ||
        a.message.localeCompare(b.message),
    );
  }
}

/** Computes 1-based line/column positions for offsets of one source text. */
export class SourceFile {
  private readonly lineStarts: number[] = [0];

  constructor(
    readonly path: string,
    readonly text: string,
  ) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  /** 1-based line and column of an offset (clamped to the text). */
  position(offset: number): { line: number; column: number } {
    const clamped = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= clamped) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: clamped - this.lineStarts[lo]! + 1 };
  }

  span(start: number, end: number): Span {
    const s = this.position(start);
    const e = this.position(end);
    return { file: this.path, start, end, line: s.line, column: s.column, endLine: e.line, endColumn: e.column };
  }

  /** The text of a 1-based line, without its line break. */
  lineText(line: number): string {
    const start = this.lineStarts[line - 1];
    if (start === undefined) return '';
    const next = this.lineStarts[line];
    const end = next === undefined ? this.text.length : next - 1;
    return this.text.slice(start, end).replace(/\r$/, '');
  }
}

/** A point span at the start of a file, for problems with the file as a whole. */
export function fileStartSpan(file: string): Span {
  return { file, start: 0, end: 0, line: 1, column: 1, endLine: 1, endColumn: 1 };
}

/** A span covering `from` through `to`. */
export function joinSpans(from: Span, to: Span): Span {
  return {
    file: from.file,
    start: from.start,
    end: to.end,
    line: from.line,
    column: from.column,
    endLine: to.endLine,
    endColumn: to.endColumn,
  };
}

/** Columns of a source line shown in an excerpt; a longer line (a 50 MB JSONL row) is cut around the caret. */
const EXCERPT_COLUMNS = 120;
/** Columns shown before the caret when a long line is cut. */
const EXCERPT_BEFORE = 40;

/**
 * Control characters (C0 but tab and newline, DEL, C1) and the bidirectional
 * overrides, which a terminal would obey rather than show: a data file in an
 * excerpt or a message must not move the cursor, recolour the terminal or
 * reorder the text around it.
 */
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `s` with each unprintable character shown as an escape (`\x1b`, `\u202e`). */
export function escapeControl(s: string): string {
  return s.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

function renderExcerpt(source: SourceFile | undefined, span: Span, gutterWidth: number): string[] {
  if (!source) return [];
  const text = source.lineText(span.line);
  const pad = ' '.repeat(gutterWidth);
  const caretAt = Math.min(span.column - 1, text.length);
  const width = span.endLine === span.line ? Math.max(1, span.end - span.start) : Math.max(1, text.length - caretAt);
  // A window of the line around the caret, each end marked when cut.
  const from = text.length > EXCERPT_COLUMNS ? Math.max(0, Math.min(caretAt - EXCERPT_BEFORE, text.length - EXCERPT_COLUMNS)) : 0;
  const to = Math.min(text.length, from + EXCERPT_COLUMNS);
  const before = escapeControl(text.slice(from, caretAt));
  const marked = escapeControl(text.slice(caretAt, Math.min(to, caretAt + width)));
  const shown = `${from > 0 ? '…' : ''}${before}${escapeControl(text.slice(caretAt, to))}${to < text.length ? '…' : ''}`;
  // Tabs are kept in the caret line so the caret lines up with the source line.
  const lead = `${from > 0 ? ' ' : ''}${before.replace(/[^\t]/g, ' ')}`;
  return [`${pad} |`, `${String(span.line).padStart(gutterWidth)} | ${shown}`, `${pad} | ${lead}${'^'.repeat(Math.max(1, [...marked].length))}`];
}

/**
 * Renders diagnostics the way compilers do:
 *
 *     recipe.pt-recipe:3:12: error[matmul-shape]: matmul: inner dimensions differ ...
 *       |
 *     3 |   y = x @ w
 *       |         ^
 *       = hint: ...
 */
export function formatDiagnostics(diagnostics: readonly Diagnostic[], sources: ReadonlyMap<string, SourceFile>): string {
  const blocks: string[] = [];
  for (const d of diagnostics) {
    const s = d.span;
    // Messages may quote data (a JSON parse error quotes the row): shown escaped too.
    const lines = [`${escapeControl(s.file)}:${s.line}:${s.column}: ${d.severity}[${d.code}]: ${escapeControl(d.message)}`];
    const gutter = String(Math.max(s.line, ...d.related.map((r) => r.span.line))).length;
    lines.push(...renderExcerpt(sources.get(s.file), s, gutter));
    for (const r of d.related) {
      lines.push(`${' '.repeat(gutter)} = note: ${escapeControl(r.message)} (${escapeControl(r.span.file)}:${r.span.line}:${r.span.column})`);
    }
    if (d.hint) lines.push(`${' '.repeat(gutter)} = hint: ${escapeControl(d.hint)}`);
    blocks.push(lines.join('\n'));
  }
  return blocks.join('\n\n');
}

/** Plain-data form for `--json` output and golden tests. */
export function diagnosticToJson(d: Diagnostic): object {
  return {
    code: d.code,
    severity: d.severity,
    message: d.message,
    file: d.span.file,
    line: d.span.line,
    column: d.span.column,
    endLine: d.span.endLine,
    endColumn: d.span.endColumn,
    related: d.related.map((r) => ({ message: r.message, file: r.span.file, line: r.span.line, column: r.span.column })),
    hint: d.hint,
  };
}

/** Levenshtein distance, for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** The closest candidate within a small edit distance, or null. */
export function closestName(name: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

export function didYouMean(name: string, candidates: Iterable<string>): string | null {
  const best = closestName(name, candidates);
  return best ? `did you mean '${best}'?` : null;
}
