/** A tiny harness for checker tests: check a recipe held in memory, compare plain data. */
import { checkSource, type CheckResult } from '../../src/check/index.js';

export function check(text: string, path = 'test.pt-recipe'): CheckResult {
  return checkSource(text, path);
}

/** Diagnostics as `{code, line, column}` — the shape golden expectations use. */
export function codes(text: string): { code: string; line: number; column: number }[] {
  return check(text).diagnostics.map((d) => ({ code: d.code, line: d.span.line, column: d.span.column }));
}

/** The `ptr types` line of one declaration. */
export function typeOf(text: string, name: string): string {
  const result = check(text);
  const errors = result.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.code}: ${d.message}`);
  if (errors.length) throw new Error(`unexpected diagnostics:\n${errors.join('\n')}`);
  const decl = result.declarations.find((d) => d.name === name);
  if (!decl) throw new Error(`no declaration ${name}`);
  return decl.type;
}
