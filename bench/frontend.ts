/**
 * Front-end throughput: parse alone, and parse + resolve + check
 * (`checkSource`), on generated recipes of 5k, 10k and 20k lines. Prints
 * medians, lines per second, how time scales with size, and the same-run
 * baseline `JSON.parse` of a JSON text of the same byte size, so figures from
 * different machines can be compared as ratios.
 *
 *   npm run bench -- --only frontend   # BENCH_RUNS=7 BENCH_SIZES=5000,10000,20000 by default
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { checkSource } from '../src/check/index.js';
import { DiagnosticBag, formatDiagnostics } from '../src/language/diagnostics.js';
import { parseRecipe } from '../src/language/parser.js';
import { DATA_FILES, generateRecipe } from './gen-recipe.js';
import { fmt, median } from './util.js';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 7));
const WARMUP = 3;
const SIZES = (process.env.BENCH_SIZES ?? '5000,10000,20000').split(',').map(Number);

/** Median wall time of `body` in ms, after warm-up runs. */
function time(body: () => unknown): number {
  for (let i = 0; i < WARMUP; i++) body();
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    body();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

/** A JSON text of about `bytes` bytes shaped like a syntax tree (nested objects, short strings, numbers). */
function jsonOfSize(bytes: number): string {
  const nodes: unknown[] = [];
  let size = 2;
  for (let i = 0; size < bytes; i++) {
    const node = {
      kind: 'CallExpr',
      callee: { kind: 'NameExpr', name: `layer_${i % 97}` },
      args: [
        { kind: 'NumberLiteral', value: i * 0.5, raw: String(i * 0.5) },
        { kind: 'StringLiteral', value: 'data/corpus.txt' },
      ],
      loc: { line: i + 1, column: 3, start: i * 40, end: i * 40 + 17 },
    };
    const text = JSON.stringify(node);
    size += text.length + 1;
    nodes.push(node);
  }
  return JSON.stringify(nodes);
}

interface Row {
  lines: number;
  bytes: number;
  parseMs: number;
  checkMs: number;
  jsonMs: number;
  diagnostics: number;
}

function measure(targetLines: number, dir: string): Row {
  const recipe = generateRecipe(targetLines);
  const path = join(dir, `bench-${targetLines}.pt-recipe`);
  writeFileSync(path, recipe.text);
  const first = checkSource(recipe.text, path);
  if (first.diagnostics.length > 0) {
    // The generator must stay valid, or the check figures measure error paths instead of real work.
    process.stderr.write(`warning: the generated ${targetLines}-line recipe has ${first.diagnostics.length} diagnostics; first ones:\n`);
    process.stderr.write(`${formatDiagnostics(first.diagnostics.slice(0, 3), first.sources)}\n\n`);
  }
  const parseMs = time(() => parseRecipe(recipe.text, path, new DiagnosticBag(Number.MAX_SAFE_INTEGER)));
  const checkMs = time(() => checkSource(recipe.text, path));
  const json = jsonOfSize(Buffer.byteLength(recipe.text));
  const jsonMs = time(() => JSON.parse(json));
  return { lines: recipe.lines, bytes: Buffer.byteLength(recipe.text), parseMs, checkMs, jsonMs, diagnostics: first.diagnostics.length };
}

export function runFrontEnd(): void {
  const dir = mkdtempSync(join(tmpdir(), 'ptr-bench-'));
  try {
    for (const [rel, text] of DATA_FILES) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), text);
    }
    console.log(`front end — node ${process.version}, median of ${RUNS} runs after ${WARMUP} warm-up runs\n`);
    // One untimed pass over the smallest size first, so the JIT has settled before the first figure is taken.
    measure(Math.min(...SIZES), dir);
    const rows = SIZES.map((n) => measure(n, dir));
    const header = ['lines', 'KiB', 'parse ms', 'parse lines/s', 'check ms', 'check lines/s', 'JSON.parse ms', 'parse/JSON', 'check/JSON', 'diags'];
    const table = rows.map((r) => [
      r.lines.toLocaleString('en-US'),
      fmt(r.bytes / 1024, 0),
      fmt(r.parseMs),
      fmt((r.lines / r.parseMs) * 1000, 0),
      fmt(r.checkMs),
      fmt((r.lines / r.checkMs) * 1000, 0),
      fmt(r.jsonMs, 2),
      `${fmt(r.parseMs / r.jsonMs)}x`,
      `${fmt(r.checkMs / r.jsonMs)}x`,
      String(r.diagnostics),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
    console.log(line(header));
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const row of table) console.log(line(row));
    console.log('\nscaling (time ratio when the input doubles; ~2.0 is linear):');
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1]!;
      const b = rows[i]!;
      const sizeRatio = b.lines / a.lines;
      console.log(
        `  ${b.lines.toLocaleString('en-US')} / ${a.lines.toLocaleString('en-US')} lines (x${fmt(sizeRatio, 2)}): parse x${fmt(b.parseMs / a.parseMs, 2)}, check x${fmt(b.checkMs / a.checkMs, 2)}, JSON.parse x${fmt(b.jsonMs / a.jsonMs, 2)}`,
      );
    }
    console.log('\nparse/JSON and check/JSON: how many times slower than JSON.parse of the same number of bytes in this run.');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
