/**
 * Property tests of the front end's promise "diagnostics, never crashes":
 * whatever text `checkSource` is given, it returns, every diagnostic has a
 * kebab-case code and a position inside the file, none is an internal error,
 * and the result renders. Inputs: arbitrary unicode, arbitrary bytes decoded
 * as latin1 and as UTF-8, soup of the language's own tokens, and mutations of
 * the real recipes in the repository.
 *
 *   FUZZ_RUNS=10000 (npm run test:fuzz)   runs per property; default 300
 *   FUZZ_SEED=123                         another seed (the default is fixed, so failures reproduce)
 *
 * Each case is timed; one taking over HANG_MS fails the property. That is a
 * hang detector, not a performance assertion (see bench/ for speed).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DATA_FILES, generateRecipe } from '../../bench/gen-recipe.js';
import { checkSource, type CheckResult } from '../../src/check/index.js';
import { recipesUnder } from '../../src/cli/io.js';
import { diagnosticToJson, formatDiagnostics } from '../../src/language/diagnostics.js';
import { KEYWORDS } from '../../src/language/lexer.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 20251129);
const HANG_MS = 5_000;
/** Generous: a hang is caught per case by HANG_MS; this only bounds the whole property. */
const TEST_TIMEOUT_MS = Math.max(120_000, RUNS * 200);

console.log(`fuzz: seed ${SEED}, ${RUNS} runs per property (reproduce with FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS})`);

const CODE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

let slowest = { ms: 0, length: 0 };

/** Runs the checker on one input and throws (failing the property) on any broken promise. */
function checkOne(text: string, path: string): void {
  const t0 = performance.now();
  let result: CheckResult;
  try {
    result = checkSource(text, path);
  } catch (e) {
    throw new Error(`checkSource threw: ${(e as Error).stack ?? String(e)}`);
  }
  const ms = performance.now() - t0;
  if (ms > slowest.ms) slowest = { ms, length: text.length };
  if (ms > HANG_MS) throw new Error(`checkSource took ${ms.toFixed(0)} ms on ${text.length} characters (hang?)`);

  for (const d of result.diagnostics) {
    const where = `${d.code} at ${d.span.file}:${d.span.line}:${d.span.column} (${d.message})`;
    if (!CODE.test(d.code)) throw new Error(`diagnostic code is not kebab-case: ${where}`);
    if (d.code === 'internal-error') throw new Error(`internal error: ${where}`);
    if (d.severity !== 'error' && d.severity !== 'warning') throw new Error(`bad severity ${String(d.severity)}: ${where}`);
    if (typeof d.message !== 'string' || d.message.length === 0) throw new Error(`empty message: ${where}`);
    const { line, column } = d.span;
    if (!Number.isInteger(line) || line < 1) throw new Error(`line out of range: ${where}`);
    if (!Number.isInteger(column) || column < 1) throw new Error(`column out of range: ${where}`);
    const source = result.sources.get(d.span.file)?.text ?? (d.span.file === path ? text : null);
    if (source !== null) {
      const lines = source.split('\n').length;
      if (line > lines + 1) throw new Error(`line ${line} beyond the ${lines} lines of the file: ${where}`);
    }
  }
  // Rendering is part of "never crash": the CLI prints every result.
  formatDiagnostics(result.diagnostics, result.sources);
  JSON.stringify(result.diagnostics.map(diagnosticToJson));
}

// ---------------------------------------------------------------- inputs

const tmp = mkdtempSync(join(tmpdir(), 'ptr-fuzz-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  console.log(`fuzz: slowest case ${slowest.ms.toFixed(1)} ms (${slowest.length} characters)`);
});

/** A path in an empty temp folder, for inputs that are not real files. */
const SCRATCH = join(tmp, 'fuzz.pt-recipe');

/** Every recipe in the repository, with the path it lives at (so its imports and data files resolve). */
function corpus(): { path: string; text: string }[] {
  const out = ['grammar/examples', 'stdlib', 'examples', 'test/fixtures']
    .flatMap(recipesUnder)
    .map((path) => ({ path, text: readFileSync(path, 'utf8') }));
  // The benchmark generator's recipe is valid and self-contained, so the corpus is never empty.
  const generated = join(tmp, 'generated', 'gen.pt-recipe');
  for (const [rel, text] of DATA_FILES) {
    mkdirSync(dirname(join(tmp, 'generated', rel)), { recursive: true });
    writeFileSync(join(tmp, 'generated', rel), text);
  }
  out.push({ path: generated, text: generateRecipe(120).text });
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

const KEYWORD_LIST: readonly string[] = KEYWORDS;
const OPERATORS = ['||', '&&', '==', '!=', '<', '<=', '>', '>=', '+', '-', '*', '/', '%', '@', '**', '!', '=', '->', ':', '.', '...', ',', '?', '$', '\\'];
const BRACKETS = ['(', ')', '[', ']', '{', '}'];
const NAMES = ['x', 'w', 'B', 'T', 'd', 'f32', 'i64', 'bool', 'dim', 'batch', 'tokens', 'std', 'nn', 'policy', 'adamw', 'text', 'jsonl', 'chars', 'matmul', 'softmax', 'reshape', 'train', 'rl', 'eval', 'onnx', 'tensorrt', 'lr', 'loss'];

const identifier = fc.oneof(fc.constantFrom(...NAMES), fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/));
const number = fc.oneof(
  fc.nat({ max: 1_000_000 }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: 0, max: 1e6 }).map(String),
  fc.constantFrom('3e-4', '1_000', '0.95', '1e', '1.', '.5', '0x1F', '9'.repeat(40), '1e999', '00'),
);
const stringLit = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"data/corpus.txt"', '"./x.pt-recipe"', '"unterminated', '"\\u{110000}"', '"\\q"', '"\\u{"', '""'),
);
const spacing = fc.constantFrom(' ', ' ', ' ', '', '\n', '\t', '\r\n', '  # comment\n');
const token = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...KEYWORD_LIST) },
  { weight: 4, arbitrary: fc.constantFrom(...OPERATORS) },
  { weight: 4, arbitrary: fc.constantFrom(...BRACKETS) },
  { weight: 5, arbitrary: identifier },
  { weight: 2, arbitrary: number },
  { weight: 1, arbitrary: stringLit },
);
const tokenSoup = fc.array(fc.tuple(token, spacing), { maxLength: 150 }).map((ts) => ts.map(([t, s]) => t + s).join(''));

/** A code-unit string that may hold lone surrogates, which the `binary` unit never produces. */
const utf16 = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 200 }).map((units) => String.fromCharCode(...units));

type Mutation =
  | { op: 'delete'; at: number; length: number }
  | { op: 'insert'; at: number; text: string }
  | { op: 'duplicate'; at: number; length: number; to: number }
  | { op: 'swap-spans'; a: number; b: number; length: number }
  | { op: 'drop-bracket'; nth: number }
  | { op: 'swap-tokens'; a: number; b: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 80 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(token, tokenSoup, fc.string({ maxLength: 8 })) }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 200 }), to: fc.nat() }),
  fc.record({ op: fc.constant('swap-spans' as const), a: fc.nat(), b: fc.nat(), length: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ op: fc.constant('drop-bracket' as const), nth: fc.nat() }),
  fc.record({ op: fc.constant('swap-tokens' as const), a: fc.nat(), b: fc.nat() }),
);

/** Applies one mutation; positions are taken modulo the text length so every mutation applies. */
function mutate(text: string, m: Mutation): string {
  const n = Math.max(1, text.length);
  switch (m.op) {
    case 'delete': {
      const at = m.at % n;
      return text.slice(0, at) + text.slice(at + m.length);
    }
    case 'insert': {
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + m.text + text.slice(at);
    }
    case 'duplicate': {
      const at = m.at % n;
      const piece = text.slice(at, at + m.length);
      const to = m.to % (text.length + 1);
      return text.slice(0, to) + piece + text.slice(to);
    }
    case 'swap-spans': {
      let a = m.a % n;
      let b = m.b % n;
      if (a > b) [a, b] = [b, a];
      const len = Math.min(m.length, b - a);
      if (len <= 0) return text;
      return text.slice(0, a) + text.slice(b, b + len) + text.slice(a + len, b) + text.slice(a, a + len) + text.slice(b + len);
    }
    case 'drop-bracket': {
      const positions = [...text.matchAll(/[()[\]{}]/g)].map((x) => x.index);
      if (positions.length === 0) return text;
      const at = positions[m.nth % positions.length]!;
      return text.slice(0, at) + text.slice(at + 1);
    }
    case 'swap-tokens': {
      const tokens = [...text.matchAll(/"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|\d[\d_.eE+-]*|\.\.\.|->|\*\*|[=!<>]=|&&|\|\||\S/g)];
      if (tokens.length < 2) return text;
      let i = m.a % tokens.length;
      let j = m.b % tokens.length;
      if (i === j) return text;
      if (i > j) [i, j] = [j, i];
      const x = tokens[i]!;
      const y = tokens[j]!;
      return text.slice(0, x.index) + y[0] + text.slice(x.index + x[0].length, y.index) + x[0] + text.slice(y.index + y[0].length);
    }
  }
}

// ---------------------------------------------------------------- properties

const params = (offset: number): fc.Parameters<unknown> => ({ numRuns: RUNS, seed: SEED + offset, endOnFailure: false });

describe('checkSource never crashes and reports well-formed diagnostics', () => {
  it(
    'arbitrary unicode strings',
    () => {
      fc.assert(
        fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), utf16, fc.string({ unit: 'grapheme-ascii', maxLength: 400 })), (text) =>
          checkOne(text, SCRATCH),
        ),
        params(0),
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'arbitrary bytes decoded as latin1 and as UTF-8',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
          const buf = Buffer.from(bytes);
          checkOne(buf.toString('latin1'), SCRATCH);
          checkOne(buf.toString('utf8'), SCRATCH);
        }),
        params(1),
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'token soup from the language’s keywords, operators, names, numbers, strings and brackets',
    () => {
      fc.assert(
        fc.property(tokenSoup, (text) => checkOne(text, SCRATCH)),
        params(2),
      );
    },
    TEST_TIMEOUT_MS,
  );

  const recipes = corpus();
  it(
    `mutations of the ${recipes.length} recipes in the repository`,
    () => {
      fc.assert(
        fc.property(fc.nat({ max: recipes.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (which, mutations) => {
          const { path, text } = recipes[which]!;
          checkOne(
            mutations.reduce((t, m) => mutate(t, m), text),
            path,
          );
        }),
        params(3),
      );
    },
    TEST_TIMEOUT_MS,
  );

  it('the benchmark generator makes a valid recipe (the bench measures real work, and seeds the corpus above)', () => {
    const generated = recipes.find((r) => r.path.endsWith('gen.pt-recipe'))!;
    const result = checkSource(generated.text, generated.path);
    expect(result.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.code}: ${d.message}`)).toEqual([]);
    expect(result.declarations.length).toBeGreaterThan(20);
  });

  it('the unmutated corpus checks without internal errors', () => {
    for (const { path, text } of recipes) checkOne(text, path);
  });
});
