/**
 * The data pipelines: text windows and JSONL rows as batches that depend only on
 * (seed, step), epochs that visit every example once, val splits, sequences and
 * masks checked by hand, and errors that name file and line.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { datasetFields } from '../../src/check/services.js';
import { JsonlDataset, TextCorpus, type Batch, type JsonlFormat } from '../../src/runtime/data.js';
import { bytes, chars } from '../../src/runtime/tokenizer.js';

const dir = mkdtempSync(join(tmpdir(), 'ptr-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function file(text: string, ext = 'txt'): string {
  const path = join(dir, `f${fileCount++}.${ext}`);
  writeFileSync(path, text);
  return path;
}

const numbers = (a: ArrayLike<number | bigint>): number[] => Array.from(a, Number);

describe('TextCorpus', () => {
  // 1000 characters, each token id equal to its position mod 10, so a window's first
  // token tells where it started (mod 10) and the tokens must run consecutively.
  const digits = chars('0123456789');
  const text = Array.from({ length: 1000 }, (_, i) => String(i % 10)).join('');
  const path = file(text);
  const corpus = (seed = 7, split = 0.9, block = 16): TextCorpus => TextCorpus.fromFile(path, digits, { block, split, seed });

  it('splits tokens into train and val and counts the windows', () => {
    const c = corpus();
    expect(c.trainTokens).toBe(900);
    expect(c.valTokens).toBe(100);
    expect(c.windowsPerEpoch).toBe(56); // floor(900 / 16)
    expect(c.valWindows).toBe(6); // floor(100 / 16)
  });

  it('gives the same batch for the same (seed, step), from a fresh loader, in any order', () => {
    const a = corpus();
    const b = corpus();
    const later = b.trainBatch(37, 8); // a resumed run starts here, with no loader state
    for (let s = 0; s < 37; s++) a.trainBatch(s, 8);
    expect(numbers(a.trainBatch(37, 8))).toEqual(numbers(later));
    expect(numbers(a.trainBatch(0, 8))).toEqual(numbers(b.trainBatch(0, 8)));
  });

  it('gives different batches for different steps and different seeds', () => {
    const c = corpus();
    expect(numbers(c.trainBatch(0, 8))).not.toEqual(numbers(c.trainBatch(1, 8)));
    expect(numbers(c.trainBatch(0, 8))).not.toEqual(numbers(corpus(8).trainBatch(0, 8)));
  });

  it('returns [batch, block] windows of consecutive training tokens', () => {
    const c = corpus();
    const batch = c.trainBatch(3, 5);
    expect(batch).toBeInstanceOf(BigInt64Array);
    expect(batch.length).toBe(5 * 16);
    for (let row = 0; row < 5; row++) {
      const start = c.windowStart(3 * 5 + row);
      expect(start + 16).toBeLessThanOrEqual(c.trainTokens);
      expect(numbers(batch.subarray(row * 16, row * 16 + 16))).toEqual(Array.from({ length: 16 }, (_, i) => (start + i) % 10));
    }
  });

  it('visits every window start exactly once per epoch, at a seeded offset', () => {
    const c = corpus();
    const W = c.windowsPerEpoch;
    const batchSize = 5; // does not divide 56: batches straddle epoch boundaries
    expect(c.epochOf(11, batchSize)).toBe(0);
    expect(c.epochOf(12, batchSize)).toBe(1); // example 60 is in epoch 1
    const offsets = new Set<number>();
    for (let epoch = 0; epoch < 4; epoch++) {
      const starts = Array.from({ length: W }, (_, k) => c.windowStart(epoch * W + k));
      const offset = Math.min(...starts);
      offsets.add(offset);
      // 900 - 56·16 = 4 tokens of slack: the offset is 0..4, and windows never overlap.
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(offset).toBeLessThanOrEqual(4);
      expect(starts.map((s) => (s - offset) / 16).sort((a, b) => a - b)).toEqual(Array.from({ length: W }, (_, k) => k));
      // Shuffled, not in order.
      expect(starts).not.toEqual([...starts].sort((a, b) => a - b));
    }
    expect(offsets.size).toBeGreaterThan(1);
    // A large seed still gives every epoch its own order (no float rounding in the mixing).
    const big = corpus(2 ** 45);
    const epochOrder = (e: number): number[] => Array.from({ length: W }, (_, k) => big.windowStart(e * W + k));
    expect(epochOrder(0)).not.toEqual(epochOrder(1));
    // The batches read exactly those windows, across the epoch boundary too.
    const seen = Array.from({ length: 2 * W }, (_, k) => c.windowStart(k));
    const fromBatches: number[] = [];
    for (let step = 0; step * batchSize < 2 * W; step++) {
      const batch = c.trainBatch(step, batchSize);
      for (let row = 0; row < batchSize && step * batchSize + row < 2 * W; row++) fromBatches.push(Number(batch[row * 16]!));
    }
    expect(fromBatches).toEqual(seen.map((s) => s % 10));
  });

  it('serves the val split as fixed batches in order, dropping the last partial batch', () => {
    const c = corpus();
    const four = c.valBatches(4);
    expect(four.map((b) => b.length)).toEqual([4 * 16]); // 6 windows: one full batch of 4, 2 dropped
    expect(numbers(four[0]!)).toEqual(Array.from({ length: 64 }, (_, i) => (900 + i) % 10));
    const two = c.valBatches(2);
    expect(two.map((b) => b.length)).toEqual([32, 32, 32]);
    expect(numbers(two[2]!)).toEqual(Array.from({ length: 32 }, (_, i) => (900 + 64 + i) % 10));
    // Fewer windows than one batch: the single batch holds what fits.
    expect(c.valBatches(10).map((b) => b.length)).toEqual([6 * 16]);
    expect(numbers(c.valBatches(3)[0]!)).toEqual(numbers(corpus(99).valBatches(3)[0]!)); // independent of the seed
  });

  it('has no val split when split is 1, and says so', () => {
    const c = corpus(7, 1);
    expect(c.valTokens).toBe(0);
    expect(() => c.valBatches(4)).toThrow(`${path}: there is no val split (split is 1)`);
    expect(() => corpus(7, 0.99).valBatches(4)).toThrow(`${path}: the val split has 10 tokens, fewer than one block of 16`);
  });

  it('rejects a training split shorter than one block', () => {
    expect(() => corpus(7, 0.01)).toThrow(`${path}: the training split has 10 tokens, fewer than one block of 16`);
  });

  it('names file:line:col of a character the tokenizer cannot encode', () => {
    const bad = file('0123\n45\n67x9\n');
    expect(() => TextCorpus.fromFile(bad, chars('0123456789\n'), { block: 2, seed: 1 })).toThrow(`${bad}:3:3: the chars tokenizer cannot encode "x" (U+0078)`);
    expect(() => TextCorpus.fromFile(bad, digits, { block: 2, seed: 1 })).toThrow(`${bad}:1:5: the chars tokenizer cannot encode "\\n" (U+000A)`);
  });

  it('reads any text with a bytes tokenizer', () => {
    const c = TextCorpus.fromText('héllo wörld, ' .repeat(20), bytes(), { block: 8, seed: 3 }, 'mem.txt');
    expect(c.trainTokens).toBe(15 * 20);
    expect(c.windowsPerEpoch).toBe(37);
  });
});

describe('JsonlDataset', () => {
  // a=0 b=1 c=2, then pad=3 bos=4 eos=5.
  const tok = chars('abc', ['pad', 'bos', 'eos']);
  // A chat template this alphabet can encode: user "a", assistant "b", end "c".
  const chatTemplate = { system: '', user: 'a', assistant: 'b', end: 'c' };
  const rows = (...r: object[]): string => r.map((x) => JSON.stringify(x)).join('\n') + '\n';
  const load = (text: string, format: JsonlFormat, options: { maxLen?: number; split?: number; seed?: number } = {}, ext = 'jsonl'): JsonlDataset =>
    JsonlDataset.fromFile(file(text, ext), format, tok, { seed: options.seed ?? 1, maxLen: options.maxLen ?? null, split: options.split ?? 1, chatTemplate });
  const field = (batch: Batch, name: string): { shape: number[]; values: unknown[] } => {
    const f = batch.get(name)!;
    return { shape: f.shape, values: f.dtype === 'str' ? f.data : numbers(f.data) };
  };
  /** Batch rows in file order (the training stream is shuffled). */
  const inFileOrder = (ds: JsonlDataset, n: number, view: 'full' | 'prompts' = 'full'): Batch => {
    const batch = ds.trainBatch(0, n, view);
    const order = Array.from({ length: n }, (_, k) => ds.trainRow(k));
    const reorder = (f: { shape: number[]; data: ArrayLike<unknown> }): unknown[] => {
      const width = f.shape.length > 1 ? f.shape[1]! : 1;
      const out: unknown[] = [];
      for (let row = 0; row < n; row++) {
        const k = order.indexOf(row);
        for (let j = 0; j < width; j++) out.push(f.data[k * width + j]);
      }
      return out;
    };
    return new Map([...batch].map(([name, f]) => [name, { ...f, data: reorder(f) }] as const)) as unknown as Batch;
  };
  const pcRows = rows({ prompt: 'ab', completion: 'c' }, { prompt: 'a', completion: 'bcc' });

  it('builds prompt_completion sequences, masks and prompts (checked by hand)', () => {
    const ds = load(pcRows, 'prompt_completion');
    expect(ds.seqLen).toBe(6); // the longest row, row 2: bos a b c c eos
    expect(ds.promptLen).toBe(3); // bos a b
    const b = inFileOrder(ds, 2);
    expect([...b.keys()]).toEqual(['tokens', 'loss_mask']);
    expect(field(b, 'tokens')).toEqual({ shape: [2, 6], values: [4, 0, 1, 2, 5, 3, /**/ 4, 0, 1, 2, 2, 5] });
    expect(field(b, 'loss_mask')).toEqual({ shape: [2, 6], values: [0, 0, 0, 1, 1, 0, /**/ 0, 0, 1, 1, 1, 1] });
    const p = inFileOrder(ds, 2, 'prompts');
    expect([...p.keys()]).toEqual(['prompt', 'prompt_text', 'answer']);
    expect(field(p, 'prompt')).toEqual({ shape: [2, 3], values: [4, 0, 1, /**/ 3, 4, 0] }); // left-padded
    expect(field(p, 'prompt_text')).toEqual({ shape: [2], values: ['ab', 'a'] });
    expect(field(p, 'answer')).toEqual({ shape: [2], values: ['c', 'bcc'] });
  });

  it('truncates the prompt from the left to fit max_len, never the completion', () => {
    const ds = load(pcRows, 'prompt_completion', { maxLen: 5 });
    const b = inFileOrder(ds, 2);
    expect(field(b, 'tokens').values).toEqual([4, 0, 1, 2, 5, /**/ 4, 1, 2, 2, 5]);
    expect(field(b, 'loss_mask').values).toEqual([0, 0, 0, 1, 1, /**/ 0, 1, 1, 1, 1]);
    expect(field(inFileOrder(ds, 2, 'prompts'), 'prompt')).toEqual({ shape: [2, 3], values: [4, 0, 1, /**/ 3, 3, 4] }); // row 2 kept no prompt token
    const path = file(pcRows, 'jsonl');
    expect(() => JsonlDataset.fromFile(path, 'prompt_completion', tok, { maxLen: 4, seed: 1 })).toThrow(
      `${path}:2: the completion cannot fit in max_len 4: it needs 5 tokens (only prompt tokens are truncated)`,
    );
  });

  it('builds preference pairs with their own masks', () => {
    const ds = load(rows({ prompt: 'a', chosen: 'bb', rejected: 'c' }, { prompt: 'ca', chosen: 'a', rejected: 'b' }), 'preference');
    expect(ds.seqLen).toBe(5);
    const b = inFileOrder(ds, 2);
    expect([...b.keys()]).toEqual(['chosen', 'rejected', 'chosen_mask', 'rejected_mask']);
    expect(field(inFileOrder(ds, 2, 'prompts'), 'prompt').values).toEqual([3, 4, 0, /**/ 4, 2, 0]);
    expect(field(b, 'chosen').values).toEqual([4, 0, 1, 1, 5, /**/ 4, 2, 0, 0, 5]);
    expect(field(b, 'chosen_mask').values).toEqual([0, 0, 1, 1, 1, /**/ 0, 0, 0, 1, 1]);
    expect(field(b, 'rejected').values).toEqual([4, 0, 2, 5, 3, /**/ 4, 2, 0, 1, 5]);
    expect(field(b, 'rejected_mask').values).toEqual([0, 0, 1, 1, 0, /**/ 0, 0, 0, 1, 1]);
  });

  it('renders chat rows with the template: mask on assistant messages and the eos closing them (checked by hand)', () => {
    const path = file(
      rows(
        {
          messages: [
            { role: 'user', content: 'ab' },
            { role: 'assistant', content: 'c' },
            { role: 'user', content: 'a' },
            { role: 'assistant', content: 'bb' },
          ],
        },
        { messages: [{ role: 'system', content: 'c' }, { role: 'assistant', content: 'a' }] },
      ),
      'jsonl',
    );
    const ds = JsonlDataset.fromFile(path, 'chat', tok, { seed: 1, chatTemplate });
    const b = inFileOrder(ds, 2);
    expect([...b.keys()]).toEqual(['tokens', 'loss_mask']);
    // bos | a ab c | b c eos c | a a c | b bb eos c     (prefix, content, [eos], end per message)
    // bos | c c | b a eos c                             (the system prefix is empty)
    expect(field(b, 'tokens')).toEqual({
      shape: [2, 17],
      values: [4, 0, 0, 1, 2, 1, 2, 5, 2, 0, 0, 2, 1, 1, 1, 5, 2, /**/ 4, 2, 2, 1, 0, 5, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
    });
    expect(field(b, 'loss_mask').values).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, /**/ 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => ds.trainBatch(0, 1, 'prompts')).toThrow('chat datasets have no prompts view');
  });

  it('trains the end text after an assistant message when the tokenizer has no eos (nor bos)', () => {
    const plain = chars('abc', ['pad']);
    const path = file(rows({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'bb' }] }), 'jsonl');
    const b = JsonlDataset.fromFile(path, 'chat', plain, { seed: 1, chatTemplate }).trainBatch(0, 1);
    // a a c | b bb c
    expect(field(b, 'tokens').values).toEqual([0, 0, 2, 1, 1, 1, 2]);
    expect(field(b, 'loss_mask').values).toEqual([0, 0, 0, 0, 1, 1, 1]);
  });

  it('names the template text a tokenizer cannot encode', () => {
    const path = file(rows({ messages: [{ role: 'assistant', content: 'a' }] }), 'jsonl');
    expect(() => JsonlDataset.fromFile(path, 'chat', tok, { seed: 1 })).toThrow(`${path}:1: "template.assistant": chars tokenizer cannot encode "A" (U+0041) at index 0`);
  });

  it('has the fields and dtypes the checker gives each format', () => {
    const files: Record<JsonlFormat, string> = {
      prompt_completion: pcRows,
      preference: rows({ prompt: 'a', chosen: 'b', rejected: 'c' }),
      chat: rows({ messages: [{ role: 'assistant', content: 'a' }] }),
    };
    for (const format of Object.keys(files) as JsonlFormat[]) {
      const ds = load(files[format], format);
      const checked = datasetFields(format, null)!;
      const batch = ds.trainBatch(0, 3);
      expect([...batch.keys()], format).toEqual([...checked.keys()]);
      for (const [name, f] of batch) {
        const ty = checked.get(name) as unknown as { dtype: string; shape: { dims: unknown[] } };
        expect(f.dtype, `${format}.${name}`).toBe(ty.dtype);
        expect(f.shape.length, `${format}.${name}`).toBe(ty.shape.dims.length);
        expect(f.shape[0], `${format}.${name}`).toBe(3);
      }
    }
    const prompts = load(pcRows, 'prompt_completion').trainBatch(0, 2, 'prompts');
    expect([...prompts.keys()]).toEqual([...datasetFields('prompts', null)!.keys()]);
  });

  it('gives the same batch for the same (seed, step), different for other steps, each row once per epoch', () => {
    const many = rows(...Array.from({ length: 10 }, (_, i) => ({ prompt: 'a'.repeat(i + 1), completion: 'b' })));
    const a = load(many, 'prompt_completion', { seed: 5 });
    const b = load(many, 'prompt_completion', { seed: 5 });
    const same = (x: Batch, y: Batch): boolean => [...x].every(([k, f]) => JSON.stringify(field(x, k)) === JSON.stringify(field(y, k)) && f.shape.length > 0);
    expect(same(a.trainBatch(6, 3), b.trainBatch(6, 3))).toBe(true);
    expect(same(a.trainBatch(0, 3), a.trainBatch(1, 3))).toBe(false);
    for (let epoch = 0; epoch < 3; epoch++) {
      const seen = Array.from({ length: 10 }, (_, k) => a.trainRow(epoch * 10 + k));
      expect([...seen].sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
    }
    expect(a.epochOf(3, 3)).toBe(0);
    expect(a.epochOf(4, 3)).toBe(1);
  });

  it('splits rows into train and val, serving val in file order', () => {
    const ten = rows(...Array.from({ length: 10 }, (_, i) => ({ prompt: 'a', completion: 'c'.repeat(i + 1) })));
    const ds = load(ten, 'prompt_completion', { split: 0.7 });
    expect(ds.trainRows).toBe(7);
    expect(ds.valRows).toBe(3);
    for (let k = 0; k < 70; k++) expect(ds.trainRow(k)).toBeLessThan(7);
    expect(ds.valBatches(2, 'prompts').map((b) => field(b, 'answer').values)).toEqual([['cccccccc', 'ccccccccc']]); // rows 8, 9; row 10 dropped
    expect(ds.valBatches(5, 'prompts').map((b) => field(b, 'answer').values)).toEqual([['cccccccc', 'ccccccccc', 'cccccccccc']]);
    expect(() => load(ten, 'prompt_completion').valBatches(2)).toThrow('there is no val split (10 rows, all used for training)');
  });

  it('rejects malformed rows naming file:line and what was expected', () => {
    const cases: [JsonlFormat, string, string][] = [
      ['prompt_completion', '{"prompt":"a","completion":"b"}\n\n{"prompt": "a",', ':3: not valid JSON: '],
      ['prompt_completion', '[1, 2]', ':1: expected a JSON object with "prompt", "completion"'],
      ['prompt_completion', '{"prompt":"a","answer":"b"}', ':1: a prompt_completion row needs "completion"'],
      ['prompt_completion', '{"prompt":"a","completion":7}', ':1: "completion" must be a string, not a number'],
      ['preference', '{"prompt":"a","chosen":"b"}', ':1: a preference row needs "rejected"'],
      ['chat', '{"messages":"hi"}', ':1: "messages" must be a non-empty array of {"role", "content"} messages'],
      ['chat', '{"messages":[{"role":"bot","content":"a"}]}', ':1: messages[0].role must be one of "system", "user", "assistant", not a string'],
      ['chat', '{"messages":[{"role":"user"}]}', ':1: messages[0].content must be a string, not missing'],
      ['chat', '{"messages":[{"role":"user","content":"a"}]}', ':1: a chat row needs at least one "assistant" message to train on'],
      ['prompt_completion', '{"prompt":"a","completion":"b"}\n{"prompt":"ax","completion":"b"}', ':2: "prompt": chars tokenizer cannot encode "x" (U+0078) at index 1'],
      ['chat', '{"messages":[{"role":"assistant","content":"é"}]}', ':1: "messages[0].content": chars tokenizer cannot encode "é" (U+00E9) at index 0'],
      ['prompt_completion', '\n\n', ' has no rows'],
    ];
    for (const [format, text, message] of cases) {
      const path = file(text, 'jsonl');
      expect(() => JsonlDataset.fromFile(path, format, tok, { seed: 1, chatTemplate }), message).toThrow(`${path}${message}`);
    }
  });
});
