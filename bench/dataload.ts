/**
 * Memory of loading a JSONL dataset, as a ratio: the peak RSS a loader process
 * adds while reading and tokenizing a file, over the size of the tokenized data
 * (4 bytes per token id + 1 byte of loss mask). Two shapes of data: 38 MB of
 * short rows, and one row of 50 MB. Each load runs in a fresh process so its
 * peak (VmHWM) is its own.
 *
 *   npm run build && node dist/bench/dataload.js
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonlDataset } from '../src/runtime/data.js';
import { Prng } from '../src/runtime/prng.js';
import { chars } from '../src/runtime/tokenizer.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz ';

function text(prng: Prng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[prng.int(ALPHABET.length)];
  return s;
}

/** Writes the two files; returns their paths. */
function makeData(dir: string): { rows: string; row: string } {
  const prng = new Prng(1);
  const lines: string[] = [];
  let size = 0;
  while (size < 38_000_000) {
    const line = `${JSON.stringify({ prompt: text(prng, 20 + prng.int(180)), completion: text(prng, 20 + prng.int(180)) })}\n`;
    lines.push(line);
    size += line.length;
  }
  const rows = join(dir, 'rows.jsonl');
  writeFileSync(rows, lines.join(''));
  const row = join(dir, 'row.jsonl');
  writeFileSync(row, `${JSON.stringify({ prompt: text(prng, 25_000_000), completion: text(prng, 25_000_000) })}\n`);
  return { rows, row };
}

/** In the child: load `file`, print its rows, the RSS before and the peak RSS. */
function child(file: string): void {
  const tok = chars(ALPHABET, ['pad', 'bos', 'eos']);
  const base = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
  const began = performance.now();
  const ds = JsonlDataset.fromFile(file, 'prompt_completion', tok, { seed: 1 });
  const seconds = (performance.now() - began) / 1000;
  const peak = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
  process.stdout.write(JSON.stringify({ rows: ds.trainRows, seqLen: ds.seqLen, base, peak, seconds }));
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'ptr-dataload-'));
  try {
    const files = makeData(dir);
    console.log('JSONL loading: peak RSS added / tokenized size (int32 ids + u8 mask)');
    for (const [what, file] of [['38 MB of short rows', files.rows], ['one 50 MB row', files.row]] as const) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', file], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      const m = JSON.parse(r.stdout) as { rows: number; base: number; peak: number; seconds: number };
      // Characters of prompt and completion, plus bos and eos, per row: one token each (chars tokenizer).
      const chars = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .reduce((n, l) => {
          const o = JSON.parse(l) as { prompt: string; completion: string };
          return n + o.prompt.length + o.completion.length + 2;
        }, 0);
      const tokenized = chars * 5;
      const added = m.peak - m.base;
      console.log(`  ${what.padEnd(20)} ${m.rows.toLocaleString('en-US').padStart(8)} rows  tokenized ${(tokenized / 1e6).toFixed(0)} MB  peak RSS +${(added / 1e6).toFixed(0)} MB  ratio ${(added / tokenized).toFixed(2)}×  ${m.seconds.toFixed(1)} s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') child(process.argv[3]!);
else main();
