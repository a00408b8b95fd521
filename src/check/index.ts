/**
 * Entry point of the checker: parse, resolve imports, infer types and validate
 * stages for a set of recipe files. Never throws on bad input.
 * (Being written: for now this only parses.)
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Recipe } from '../language/ast.js';
import { DiagnosticBag, SourceFile, type Diagnostic } from '../language/diagnostics.js';
import { parseRecipe } from '../language/parser.js';

export interface CheckOptions {
  /** Stop collecting after this many diagnostics (default 200). */
  readonly maxErrors?: number;
}

/** What the checker inferred for one top-level declaration, for `ptr types`. */
export interface DeclarationSummary {
  readonly file: string;
  readonly line: number;
  readonly declKind: string;
  readonly name: string;
  /** One-line description of the inferred type, e.g. `forward(i64[B, T]) -> f32[B, T, 21]; 812,288 params`. */
  readonly type: string;
}

export interface CheckResult {
  /** Sorted by file and position. */
  readonly diagnostics: readonly Diagnostic[];
  readonly truncated: boolean;
  /** Every source file read (entry files and imports), by path as reported in diagnostics. */
  readonly sources: ReadonlyMap<string, SourceFile>;
  readonly recipes: ReadonlyMap<string, Recipe>;
  /** Declarations of the entry files, in source order. */
  readonly declarations: readonly DeclarationSummary[];
}

/** Checks recipe text held in memory; `path` names it in diagnostics and anchors relative imports. */
export function checkSource(text: string, path: string, options: CheckOptions = {}): CheckResult {
  const bag = new DiagnosticBag(options.maxErrors);
  const source = new SourceFile(path, text);
  const recipe = parseRecipe(text, path, bag);
  return {
    diagnostics: bag.sorted(),
    truncated: bag.truncated,
    sources: new Map([[path, source]]),
    recipes: new Map([[path, recipe]]),
    declarations: [],
  };
}

/** Reads and checks recipe files. A file that cannot be read is a diagnostic, not an exception. */
export function checkFiles(paths: readonly string[], options: CheckOptions = {}): CheckResult {
  const results = paths.map((p) => {
    let text: string;
    try {
      text = readFileSync(resolve(p), 'utf8');
    } catch {
      text = '';
    }
    return checkSource(text, p, options);
  });
  return {
    diagnostics: results.flatMap((r) => r.diagnostics),
    truncated: results.some((r) => r.truncated),
    sources: new Map(results.flatMap((r) => [...r.sources])),
    recipes: new Map(results.flatMap((r) => [...r.recipes])),
    declarations: results.flatMap((r) => r.declarations),
  };
}
