/**
 * Golden diagnostics: each test/fixtures/diagnostics/NAME.pt-recipe is checked
 * and its diagnostics compared with NAME.expected.json ({code, line, column,
 * message} per diagnostic, as plain data). Run with UPDATE_GOLDEN=1 to rewrite
 * the expectations after a deliberate change, then review the diff.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../src/check/index.js';

const DIR = 'test/fixtures/diagnostics';
const fixtures = readdirSync(DIR).filter((f) => f.endsWith('.pt-recipe')).sort();

interface Expected {
  code: string;
  line: number;
  column: number;
  message: string;
}

function actual(file: string): Expected[] {
  return checkFiles([join(DIR, file)]).diagnostics.map((d) => ({
    code: d.code,
    file: d.span.file,
    line: d.span.line,
    column: d.span.column,
    message: d.message,
  }));
}

describe('golden diagnostics', () => {
  for (const file of fixtures) {
    it(file, () => {
      const expectedPath = join(DIR, file.replace(/\.pt-recipe$/, '.expected.json'));
      const got = actual(file);
      if (process.env.UPDATE_GOLDEN) writeFileSync(expectedPath, JSON.stringify(got, null, 2) + '\n');
      expect(existsSync(expectedPath), `missing ${expectedPath}; run with UPDATE_GOLDEN=1`).toBe(true);
      expect(got).toEqual(JSON.parse(readFileSync(expectedPath, 'utf8')));
    });
  }

  it('covers every diagnostic code the compiler can report', () => {
    const codes = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (path.endsWith('.ts')) {
          const text = readFileSync(path, 'utf8');
          // Codes appear as the first argument of report(...), in shapeError(...), and as `code: '...'` (not `decode: '...'`).
          for (const m of text.matchAll(/(?:report|shapeError)\(\s*'([a-z][a-z0-9-]*)'|(?<![\w.])code: '([a-z][a-z0-9-]*)'/g)) codes.add((m[1] ?? m[2])!);
        }
      }
    };
    walk('src');
    // An internal error is a bug by definition and has no fixture.
    codes.delete('internal-error');
    const covered = new Set<string>();
    for (const f of readdirSync(DIR).filter((x) => x.endsWith('.expected.json'))) {
      for (const d of JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Expected[]) covered.add(d.code);
    }
    const missing = [...codes].filter((c) => !covered.has(c)).sort();
    expect(missing, 'diagnostic codes without a golden fixture').toEqual([]);
    expect(codes.size).toBeGreaterThan(30);
  });
});
