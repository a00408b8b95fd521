/**
 * stdlib/REFERENCE.md is generated from the stdlib sources (src/check/stdlibReference.ts,
 * written by `npm run docs`): the committed file must be what the generator
 * gives today, must name every block and fn of every module, and the generator
 * must refuse a stdlib it cannot describe truthfully.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stdlibReference } from '../../src/check/stdlibReference.js';

const REFERENCE = 'stdlib/REFERENCE.md';

const scratch: string[] = [];
afterEach(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A stdlib folder in a temporary directory holding the given modules. */
function tempStdlib(modules: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ptr-stdlib-'));
  scratch.push(dir);
  mkdirSync(join(dir, 'std'));
  for (const [name, text] of Object.entries(modules)) writeFileSync(join(dir, 'std', `${name}.pt-recipe`), text);
  return dir;
}

describe('stdlib/REFERENCE.md', () => {
  it('is current (run npm run docs after changing stdlib/std)', () => {
    const committed = readFileSync(REFERENCE, 'utf8');
    const generated = stdlibReference({ stdlibDir: 'stdlib' });
    expect(committed === generated, `${REFERENCE} is stale: run npm run docs and commit it`).toBe(true);
  });

  it('has a section for every block and fn in stdlib/std', () => {
    const reference = readFileSync(REFERENCE, 'utf8');
    const declared: string[] = [];
    for (const file of readdirSync('stdlib/std').filter((f) => f.endsWith('.pt-recipe'))) {
      const text = readFileSync(join('stdlib/std', file), 'utf8');
      for (const m of text.matchAll(/^(?:block|fn) (\w+)/gm)) declared.push(m[1]!);
    }
    expect(declared.length).toBeGreaterThan(15);
    const headings = [...reference.matchAll(/^### (\w+)$/gm)].map((m) => m[1]);
    expect(headings.sort()).toEqual(declared.sort());
  });
});

describe('stdlibReference', () => {
  it('gives the checked signature, the forward and the first sentence of the comment', () => {
    const dir = tempStdlib({
      toy: [
        '# std.toy — a module for this test.',
        '',
        '# Scales x, e.g. by two. Nothing else.',
        'block Scale(d: dim, k: float = 2.0) {',
        '  param w: f32[d] = ones()',
        '  forward(x: f32[B, d]) -> f32[B, d] = x * w * k',
        '}',
        '',
        '# Twice the input',
        '# (a second line).',
        'fn twice(x: f32[N]) -> f32[N] = x * 2.0',
        '',
      ].join('\n'),
    });
    const text = stdlibReference({ stdlibDir: dir });
    expect(text).toContain('## std.toy\n\nA module for this test.');
    expect(text).toContain('```\nimport std.toy { Scale, twice }\n```');
    expect(text).toContain('| [`Scale`](#scale) | Scales x, e.g. by two. |');
    expect(text).toContain('### Scale\n\n```\nblock Scale(d: dim, k: float = 2.0)\n  forward(x: f32[B, d]) -> f32[B, d]\n```\n\nScales x, e.g. by two.\n\nLearned parameters: `d`.');
    expect(text).toContain('### twice\n\n```\nfn twice(x: f32[N]) -> f32[N]\n```\n\nTwice the input (a second line).');
  });

  it('refuses a block without a comment, naming it', () => {
    const dir = tempStdlib({ toy: '# std.toy — test.\n\nblock Bare(d: dim) {\n  param w: f32[d] = ones()\n  forward(x: f32[d]) -> f32[d] = x * w\n}\n' });
    expect(() => stdlibReference({ stdlibDir: dir })).toThrow(/toy\.pt-recipe:3: 'Bare' has no comment above it/);
  });

  it('refuses a stdlib with type errors, printing the diagnostic', () => {
    const dir = tempStdlib({ toy: '# std.toy — test.\n\n# Wrong.\nfn wrong(x: f32[N]) -> i64[N] = x\n' });
    expect(() => stdlibReference({ stdlibDir: dir })).toThrow(/the standard library has diagnostics:[\s\S]*toy\.pt-recipe:4/);
  });
});
