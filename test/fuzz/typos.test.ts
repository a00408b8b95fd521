/**
 * One typo, one diagnostic: single-token edits (delete, misspell, duplicate) of
 * the shipped recipes, with a fixed seed, must mostly yield exactly one
 * diagnostic. The bar is a regression guard: it was 79% of erroneous edits
 * when this test was written (npm run test:fuzz widens the sample).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/index.js';
import { recipesUnder } from '../../src/cli/io.js';

const SAMPLES = Math.max(300, Number(process.env.FUZZ_RUNS ?? 0) / 10);
const TOKEN = /[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|"[^"\n]*"|->|\*\*|==|[^\s\w#]/g;

/** The tokens of a recipe outside comments, with their offsets. */
function tokens(text: string): { index: number; text: string }[] {
  const code = text.replace(/#[^\n]*/g, (c) => ' '.repeat(c.length));
  return [...code.matchAll(TOKEN)].map((m) => ({ index: m.index, text: m[0] }));
}

describe('one typo, one diagnostic', () => {
  it(`at least 75% of erroneous single-token edits give exactly one diagnostic (${SAMPLES} edits)`, () => {
    const files = ['examples', 'stdlib', 'grammar/examples'].flatMap(recipesUnder).map((path) => ({ path, text: readFileSync(path, 'utf8') }));
    const edits = fc.sample(
      fc.record({ file: fc.nat({ max: files.length - 1 }), token: fc.nat(), kind: fc.constantFrom('delete', 'misspell', 'duplicate') }),
      { numRuns: SAMPLES, seed: 20261129 },
    );
    let erroneous = 0;
    let single = 0;
    for (const edit of edits) {
      const { path, text } = files[edit.file]!;
      const all = tokens(text);
      const t = all[edit.token % all.length]!;
      const replacement =
        edit.kind === 'delete' ? '' : edit.kind === 'duplicate' ? t.text + t.text : /^[A-Za-z_]/.test(t.text) ? `${t.text.slice(0, -1)}q` : ',';
      const mutated = text.slice(0, t.index) + replacement + text.slice(t.index + t.text.length);
      const n = checkSource(mutated, path).diagnostics.length;
      if (n > 0) erroneous++;
      if (n === 1) single++;
    }
    console.log(`typos: ${single} of ${erroneous} erroneous edits gave exactly one diagnostic (${((100 * single) / erroneous).toFixed(1)}%)`);
    expect(erroneous).toBeGreaterThan(SAMPLES / 2);
    expect(single / erroneous).toBeGreaterThanOrEqual(0.75);
  }, 120_000);
});
