/**
 * The standard library and the example recipes must check cleanly: every
 * module under stdlib/std/ and every recipe under examples/ gives zero
 * diagnostics. The example data must be what its generator script produces,
 * and every character it contains must be in the alphabet of the character
 * tokenizer that reads it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../src/check/index.js';
import { recipesUnder } from '../../src/cli/io.js';
import { formatDiagnostics } from '../../src/language/diagnostics.js';

const STDLIB = recipesUnder('stdlib/std');
const EXAMPLES = recipesUnder('examples');

function expectClean(path: string): void {
  const result = checkFiles([path]);
  const text = formatDiagnostics(result.diagnostics, result.sources);
  expect(result.diagnostics.length, `${path} has diagnostics:\n${text}`).toBe(0);
}

describe('standard library', () => {
  it('has the documented modules', () => {
    expect(STDLIB).toEqual(expect.arrayContaining([join('stdlib/std', 'nn.pt-recipe'), join('stdlib/std', 'losses.pt-recipe')]));
  });
  for (const path of STDLIB) it(`${path} checks without diagnostics`, () => expectClean(path));
  for (const path of STDLIB) {
    it(`${path} starts with a comment describing the module`, () => {
      expect(readFileSync(path, 'utf8')).toMatch(/^# std\.\w+ — /);
    });
  }
});

describe('example recipes', () => {
  it('has the documented examples', () => {
    const expected = ['arith/pipeline', 'quickstart', 'distill', 'lora', 'constitutional', 'hf/finetune'].map((n) => join('examples', `${n}.pt-recipe`));
    expect(EXAMPLES).toEqual(expect.arrayContaining(expected));
  });
  for (const path of EXAMPLES) it(`${path} checks without diagnostics`, () => expectClean(path));
});

describe('syntax examples', () => {
  // grammar/examples/ show the syntax, but they are real recipes too (with their small data in grammar/examples/data).
  for (const path of recipesUnder('grammar/examples')) it(`${path} checks without diagnostics`, () => expectClean(path));
});

/** The alphabet of a recipe's `chars("...")` tokenizer and the data files it names. */
function tokenizerAndData(path: string): { alphabet: string; files: string[] } | null {
  const source = readFileSync(path, 'utf8');
  const chars = /chars\("((?:[^"\\]|\\.)*)"/.exec(source);
  if (!chars) return null;
  const alphabet = JSON.parse(`"${chars[1]}"`) as string;
  const files = [...source.matchAll(/(?:text|jsonl)\("([^"]+)"/g)].map((m) => join(dirname(path), m[1]!));
  return { alphabet, files };
}

/** The characters a tokenizer will see in a data file: the text, or the string values of JSON lines. */
function dataCharacters(file: string): Set<string> {
  const text = readFileSync(file, 'utf8');
  if (!file.endsWith('.jsonl')) return new Set(text);
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    for (const value of Object.values(JSON.parse(line) as Record<string, unknown>)) {
      if (typeof value === 'string') for (const ch of value) out.add(ch);
    }
  }
  return out;
}

describe('example data', () => {
  for (const path of EXAMPLES) {
    const info = tokenizerAndData(path);
    if (!info) continue;
    it(`${path}: its chars(...) alphabet covers its data`, () => {
      for (const file of info.files) {
        const missing = [...dataCharacters(file)].filter((c) => !info.alphabet.includes(c));
        expect(missing, `characters of ${file} missing from the alphabet of ${path}`).toEqual([]);
      }
    });
  }

  const generators: { script: string; outputs: Record<string, string> }[] = [
    {
      script: 'examples/arith/make-data.mjs',
      outputs: { 'corpus.txt': 'examples/arith/data', 'sft.jsonl': 'examples/arith/data', 'prefs.jsonl': 'examples/arith/data' },
    },
    { script: 'examples/data/make-corpus.mjs', outputs: { 'tiny-corpus.txt': 'examples/data', 'requests.jsonl': 'examples/data' } },
    { script: 'examples/hf/make-model.mjs', outputs: { 'config.json': 'examples/hf/tiny-llama', 'model.safetensors': 'examples/hf/tiny-llama', 'tokenizer.json': 'examples/hf/tiny-llama', 'tokenizer_config.json': 'examples/hf/tiny-llama' } },
  ];
  for (const g of generators) {
    it(`${g.script} reproduces the data kept in the repository`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'ptr-data-'));
      try {
        execFileSync(process.execPath, [g.script, dir], { stdio: 'pipe' });
        for (const [name, kept] of Object.entries(g.outputs)) {
          const fresh = readFileSync(join(dir, name));
          const committed = readFileSync(join(kept, name));
          expect(fresh.equals(committed), `${relative('.', join(kept, name))} differs from what ${g.script} generates`).toBe(true);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('keeps the data small', () => {
    expect(statSync('examples/arith/data/corpus.txt').size).toBeLessThanOrEqual(200_000);
    const corpus = statSync('examples/data/tiny-corpus.txt').size;
    expect(corpus).toBeGreaterThanOrEqual(300_000);
    expect(corpus).toBeLessThanOrEqual(800_000);
  });
});
