/**
 * Deterministic data pipelines for `text(...)` corpora and `jsonl(...)` datasets.
 *
 * A training batch is a pure function of (seed, step): each epoch is a seeded
 * permutation of the training examples, and step s reads examples
 * s·B … s·B+B-1 of the endless stream of epochs. A resumed run therefore gets
 * exactly the batches it would have seen, with no loader state to save.
 *
 * Validation batches are fixed: the val examples in file order, `batchSize` at a
 * time, dropping the last partial batch — unless there are fewer val examples
 * than one batch, in which case the single batch holds all of them (fewer rows).
 */
import { mixSeedBits } from '../ir/seeds.js';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { trainPart, windowsIn } from '../check/splits.js';
import { Prng } from './prng.js';
import { describeChar, EncodeError, type Tokenizer } from './tokenizer.js';
import { CHAT_ROLES, DEFAULT_CHAT_TEMPLATE, type ChatMessage, type ChatTemplate } from '../check/chatTemplate.js';
import { DATASET_FORMATS } from '../check/dataSchema.js';
import { completionPieces, conversationPieces, promptBody, PromptEncodeError, sequenceHead, type Piece } from './prompt.js';

export type BatchField =
  | { dtype: 'i64'; shape: number[]; data: BigInt64Array }
  | { dtype: 'f32'; shape: number[]; data: Float32Array }
  | { dtype: 'str'; shape: number[]; data: string[] };

/** A batch by field name, the fields and dtypes the checker gives the dataset (check/services.ts, `datasetFields`). */
export type Batch = Map<string, BatchField>;

/** Which examples a stream position reads: epoch by epoch, a seeded permutation of `count` examples. */
class EpochSampler {
  private cached: { epoch: number; offset: number; order: Uint32Array } | null = null;

  /** `slack` > 0 also draws a per-epoch offset in [0, slack] (text windows shift each epoch). */
  constructor(
    private readonly seed: number,
    readonly count: number,
    private readonly slack = 0,
  ) {
    if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, not ${seed}`);
  }

  epochOf(position: number): number {
    return Math.floor(position / this.count);
  }

  /** The example at `position` of the stream, and its epoch's offset. */
  at(position: number): { example: number; offset: number } {
    const epoch = this.epochOf(position);
    if (this.cached?.epoch !== epoch) {
      // Seed and epoch mixed (exactly, in 53 bits) so every epoch of every seed gets its
      // own stream; the Prng's SplitMix seeding makes them unrelated.
      const prng = new Prng(mixSeedBits(this.seed, epoch, 53));
      const offset = prng.int(this.slack + 1);
      this.cached = { epoch, offset, order: prng.permutation(this.count) };
    }
    return { example: this.cached.order[position - epoch * this.count]!, offset: this.cached.offset };
  }
}

// ---------------------------------------------------------------------------------------------
// text(...)

export interface TextCorpusOptions {
  /** Tokens per training example (the `block` of `text(...)`). */
  block: number;
  /** Fraction of the tokens, from the start, that is training data; the rest is val. Default 1. */
  split?: number;
  seed: number;
}

/** A tokenized text file split into train and val; examples are non-overlapping windows of `block` tokens. */
export class TextCorpus {
  readonly block: number;
  readonly trainTokens: number;
  readonly valTokens: number;
  /** Training windows per epoch: floor(trainTokens / block). */
  readonly windowsPerEpoch: number;
  private readonly sampler: EpochSampler;

  private constructor(
    readonly file: string,
    private readonly tokens: Int32Array,
    options: TextCorpusOptions,
  ) {
    const split = options.split ?? 1;
    checkInt(options.block, 'block', 1);
    if (!(split > 0 && split <= 1)) throw new Error(`${file}: split must be in (0, 1], not ${split}`);
    this.block = options.block;
    this.trainTokens = trainPart(tokens.length, split);
    this.valTokens = tokens.length - this.trainTokens;
    this.windowsPerEpoch = windowsIn(this.trainTokens, this.block);
    if (this.windowsPerEpoch === 0) {
      throw new Error(`${file}: the training split has ${this.trainTokens} tokens, fewer than one block of ${this.block}`);
    }
    // The windows start at a seeded offset each epoch, so over many epochs the model sees
    // every boundary position rather than the same fixed cut; the slack is what the
    // windows leave over.
    this.sampler = new EpochSampler(options.seed, this.windowsPerEpoch, this.trainTokens - this.windowsPerEpoch * this.block);
  }

  static fromFile(path: string, tokenizer: Tokenizer, options: TextCorpusOptions): TextCorpus {
    return TextCorpus.fromText(readFileSync(path, 'utf8'), tokenizer, options, path);
  }

  /** `file` names the text in error messages. */
  static fromText(text: string, tokenizer: Tokenizer, options: TextCorpusOptions, file = '<text>'): TextCorpus {
    let tokens: Int32Array;
    try {
      tokens = tokenizer.encode(text);
    } catch (e) {
      if (!(e instanceof EncodeError)) throw e;
      const { line, column } = lineColumn(text, e.index);
      throw new Error(`${file}:${line}:${column}: the ${tokenizer.kind} tokenizer cannot encode ${describeChar(e.char)}`);
    }
    return new TextCorpus(file, tokens, options);
  }

  /** The epoch that training step `step` (0-based) reads from (its first example's epoch). */
  epochOf(step: number, batchSize: number): number {
    return this.sampler.epochOf(step * batchSize);
  }

  /** Token offset of the `example`-th window of the training stream (0-based, across epochs). */
  windowStart(example: number): number {
    const { example: window, offset } = this.sampler.at(example);
    return offset + window * this.block;
  }

  /** Training batch `step` (0-based): i64 [batchSize, block], row-major. */
  trainBatch(step: number, batchSize: number): BigInt64Array {
    checkInt(step, 'step', 0);
    checkInt(batchSize, 'batch size', 1);
    const out = new BigInt64Array(batchSize * this.block);
    for (let row = 0; row < batchSize; row++) {
      copyTokens(this.tokens, this.windowStart(step * batchSize + row), this.block, out, row * this.block);
    }
    return out;
  }

  /** Non-overlapping val windows from the start of the val split. */
  get valWindows(): number {
    return windowsIn(this.valTokens, this.block);
  }

  /** The val split as fixed batches of i64 [rows, block] (see the header comment for the policy). */
  valBatches(batchSize: number): BigInt64Array[] {
    checkInt(batchSize, 'batch size', 1);
    if (this.valTokens === 0) throw new Error(`${this.file}: there is no val split (split is 1)`);
    if (this.valWindows === 0) throw new Error(`${this.file}: the val split has ${this.valTokens} tokens, fewer than one block of ${this.block}`);
    return batchRanges(this.valWindows, batchSize).map(([first, rows]) => {
      const out = new BigInt64Array(rows * this.block);
      for (let row = 0; row < rows; row++) {
        copyTokens(this.tokens, this.trainTokens + (first + row) * this.block, this.block, out, row * this.block);
      }
      return out;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// jsonl(...)

export type JsonlFormat = 'prompt_completion' | 'preference' | 'chat';

export interface JsonlOptions {
  /** Sequence length T; rows are truncated to fit. Default: the longest row. */
  maxLen?: number | null;
  /** Fraction of the rows, from the start of the file, that is training data. Default 1. */
  split?: number;
  seed: number;
  /** How chat rows are rendered (see runtime/prompt.ts). Default DEFAULT_CHAT_TEMPLATE. */
  chatTemplate?: ChatTemplate;
}

/** `full`: the format's fields; `prompts`: prompt, prompt_text and answer (the `dataset.prompts` view used by rl stages). */
export type BatchView = 'full' | 'prompts';

/**
 * The rows of a JSONL dataset, stored flat: every sequence's tokens in one Int32Array
 * and its loss mask at the same offsets in one Uint8Array, with per-row offsets in
 * typed arrays — a few bytes per token and per row, instead of a JS object and
 * several arrays per row. Memory then stays within a small multiple of the
 * tokenized data, however many rows or however long one row is.
 */
class RowStore {
  private tokens = new Int32Array(1 << 16);
  private masks = new Uint8Array(1 << 16);
  private used = 0;
  /** Per row: its file line, its sequences' [start, length] (1 or 2), its prompt's [start, length] (a prefix of a sequence). */
  private lines = new Float64Array(1 << 10);
  private spans = new Float64Array(6 << 10);
  count = 0;
  /** Kept for the `prompts` view (rl stages): the prompt text and the reference answer of each row. */
  readonly promptTexts: string[] = [];
  readonly answers: string[] = [];

  constructor(readonly sequencesPerRow: number) {}

  /** Appends `head` + `body` (with their masks) as one sequence; returns where it starts. */
  private pushSequence(head: Int32Array, body: readonly Piece[], dropped: number): number {
    const length = head.length + body.reduce((n, p) => n + p.tokens.length, 0) - dropped;
    this.reserve(length);
    const start = this.used;
    this.tokens.set(head, start);
    this.masks.fill(0, start, start + head.length);
    let at = start + head.length;
    let skip = dropped;
    for (const p of body) {
      const part = skip >= p.tokens.length ? p.tokens.subarray(p.tokens.length) : p.tokens.subarray(skip);
      skip = Math.max(0, skip - p.tokens.length);
      this.tokens.set(part, at);
      this.masks.fill(p.trained ? 1 : 0, at, at + part.length);
      at += part.length;
    }
    this.used = at;
    return start;
  }

  /**
   * Appends a row: its sequences (head + body, `dropped` body tokens cut from the left)
   * and its prompt, head + the `promptTokens` prompt tokens its sequences kept (null:
   * the format has no prompt field).
   */
  push(line: number, head: Int32Array, bodies: readonly { readonly pieces: readonly Piece[]; readonly dropped: number }[], promptTokens: number | null, promptText: string, answer: string): void {
    if (this.count === this.lines.length) {
      this.lines = grow(this.lines, this.count * 2);
      this.spans = grow(this.spans, this.count * 12);
    }
    const r = this.count++;
    this.lines[r] = line;
    let deepest = 0;
    bodies.forEach((b, k) => {
      const start = this.pushSequence(head, b.pieces, b.dropped);
      this.spans[r * 6 + 2 * k] = start;
      this.spans[r * 6 + 2 * k + 1] = this.used - start;
      if (b.dropped >= bodies[deepest]!.dropped) deepest = k;
    });
    // The prompt keeps the prompt tokens every sequence kept: a prefix of the sequence that dropped most.
    this.spans[r * 6 + 4] = this.spans[r * 6 + 2 * deepest]!;
    this.spans[r * 6 + 5] = promptTokens === null ? 0 : head.length + Math.max(0, promptTokens - bodies[deepest]!.dropped);
    this.promptTexts.push(promptText);
    this.answers.push(answer);
  }

  line(r: number): number {
    return this.lines[r]!;
  }

  sequence(r: number, k: number): { tokens: Int32Array; mask: Uint8Array } {
    const start = this.spans[r * 6 + 2 * k]!;
    const end = start + this.spans[r * 6 + 2 * k + 1]!;
    return { tokens: this.tokens.subarray(start, end), mask: this.masks.subarray(start, end) };
  }

  prompt(r: number): Int32Array {
    const start = this.spans[r * 6 + 4]!;
    return this.tokens.subarray(start, start + this.spans[r * 6 + 5]!);
  }

  private reserve(n: number): void {
    if (this.used + n <= this.tokens.length) return;
    const size = Math.max(this.used + n, Math.ceil(this.tokens.length * 1.5));
    this.tokens = grow(this.tokens, size);
    this.masks = grow(this.masks, size);
  }
}

function grow<A extends Int32Array | Uint8Array | Float64Array>(a: A, size: number): A {
  const out = new (a.constructor as new (n: number) => A)(size);
  out.set(a);
  return out;
}

const REQUIRED_KEYS: Readonly<Record<JsonlFormat, readonly string[]>> = {
  prompt_completion: ['prompt', 'completion'],
  preference: ['prompt', 'chosen', 'rejected'],
  chat: ['messages'],
};

/**
 * Rows of a JSON lines file as fixed-shape batches.
 *
 * Sequences are laid out by runtime/prompt.ts, the same functions `ptr sample` builds
 * its prompt with: `bos + prompt + completion + eos` (bos and eos where the tokenizer
 * has them), and chat rows rendered with the dataset's chat template. They are
 * right-padded with `pad` (or eos, or 0: padded positions are masked out) to T. The
 * loss mask is 1 on the trained tokens: a completion and its eos; an assistant
 * message and what closes it. A row too long for T loses untrained tokens from the
 * left (after bos); one whose trained tokens do not fit is an error. Prompts
 * (`prompt: i64[B, P]`) are bos + the kept prompt tokens, left-padded to the longest,
 * so generation continues at the same position in every row.
 */
export class JsonlDataset {
  /** Sequence length T of `tokens`, `chosen`, `rejected` and their masks. */
  readonly seqLen: number;
  /** Prompt length P of `prompt`. */
  readonly promptLen: number;
  readonly trainRows: number;
  readonly valRows: number;
  private readonly sampler: EpochSampler;
  private readonly pad: number;

  private constructor(
    readonly file: string,
    readonly format: JsonlFormat,
    private readonly rows: RowStore,
    seqLen: number,
    pad: number,
    options: JsonlOptions,
  ) {
    const split = options.split ?? 1;
    if (!(split > 0 && split <= 1)) throw new Error(`${file}: split must be in (0, 1], not ${split}`);
    this.seqLen = seqLen;
    let promptLen = 0;
    for (let r = 0; r < rows.count; r++) promptLen = Math.max(promptLen, rows.prompt(r).length);
    this.promptLen = promptLen;
    this.trainRows = trainPart(rows.count, split);
    this.valRows = rows.count - this.trainRows;
    if (this.trainRows === 0) throw new Error(`${file}: the training split is empty (${rows.count} rows, split ${split})`);
    this.sampler = new EpochSampler(options.seed, this.trainRows);
    this.pad = pad;
  }

  /** Reads a JSONL file line by line (never the whole file at once) into flat row storage. */
  static fromFile(path: string, format: JsonlFormat, tokenizer: Tokenizer, options: JsonlOptions): JsonlDataset {
    return JsonlDataset.fromLines((each) => forEachLine(path, each), format, tokenizer, options, path);
  }

  /** `file` names the text in error messages. */
  static fromText(text: string, format: JsonlFormat, tokenizer: Tokenizer, options: JsonlOptions, file = '<jsonl>'): JsonlDataset {
    return JsonlDataset.fromLines((each) => text.split('\n').forEach((raw, i) => each(raw, i + 1)), format, tokenizer, options, file);
  }

  private static fromLines(lines: (each: (raw: string, line: number) => void) => void, format: JsonlFormat, tokenizer: Tokenizer, options: JsonlOptions, file: string): JsonlDataset {
    if (!Object.hasOwn(REQUIRED_KEYS, format)) throw new Error(`${file}: unknown dataset format '${format}' (expected ${Object.keys(REQUIRED_KEYS).join(', ')})`);
    if (options.maxLen != null) checkInt(options.maxLen, 'max_len', 2);
    const eos = tokenizer.special('eos');
    const pad = tokenizer.special('pad') ?? eos ?? 0;
    const head = sequenceHead(tokenizer, format);
    const template = options.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
    const maxLen = options.maxLen ?? null;
    const rows = new RowStore(format === 'preference' ? 2 : 1);
    // Without max_len, T is the longest row, so no row is ever cut.
    let longest = 0;
    lines((raw, line) => {
      const trimmed = raw.trim();
      if (trimmed === '') return;
      const at = `${file}:${line}`;
      const record = parseRow(trimmed, format, at);
      try {
        const bodies: { name: string; pieces: Piece[] }[] = [];
        let promptText = '';
        let answer = '';
        let promptTokens: number | null = null;
        if (format === 'chat') {
          bodies.push({ name: 'the assistant messages', pieces: conversationPieces(tokenizer, template, record['messages'] as ChatMessage[]) });
        } else {
          promptText = record['prompt'] as string;
          const prompt = promptBody(tokenizer, { format, prompt: promptText });
          promptTokens = prompt[0]!.tokens.length;
          const completions = format === 'preference' ? ['chosen', 'rejected'] : ['completion'];
          answer = record[completions[0]!] as string;
          for (const key of completions) {
            bodies.push({ name: format === 'preference' ? `the ${key} completion` : 'the completion', pieces: [...prompt, ...completionPieces(tokenizer, record[key] as string, key)] });
          }
        }
        const fitted = bodies.map((b) => {
          const length = b.pieces.reduce((n, p) => n + p.tokens.length, head.length);
          longest = Math.max(longest, length);
          return { pieces: b.pieces, dropped: maxLen === null ? 0 : droppedToFit(head, b.pieces, maxLen, `${at}: ${b.name}`) };
        });
        rows.push(line, head, fitted, promptTokens, promptText, answer);
      } catch (e) {
        if (e instanceof PromptEncodeError) throw new Error(`${at}: ${e.message}`);
        throw e;
      }
    });
    if (rows.count === 0) throw new Error(`${file} has no rows`);
    return new JsonlDataset(file, format, rows, maxLen ?? longest, pad, options);
  }

  /** The epoch that training step `step` (0-based) reads from (its first example's epoch). */
  epochOf(step: number, batchSize: number): number {
    return this.sampler.epochOf(step * batchSize);
  }

  /** Index (in file order, among the rows) of the `example`-th row of the training stream. */
  trainRow(example: number): number {
    return this.sampler.at(example).example;
  }

  /** The 1-based file line of row `index`. */
  lineOf(index: number): number {
    return this.rows.line(index);
  }

  /** Training batch `step` (0-based). */
  trainBatch(step: number, batchSize: number, view: BatchView = 'full'): Batch {
    checkInt(step, 'step', 0);
    checkInt(batchSize, 'batch size', 1);
    const picked: number[] = [];
    for (let i = 0; i < batchSize; i++) picked.push(this.trainRow(step * batchSize + i));
    return this.assemble(picked, view);
  }

  /** The val rows as fixed batches (see the header comment for the policy). */
  valBatches(batchSize: number, view: BatchView = 'full'): Batch[] {
    checkInt(batchSize, 'batch size', 1);
    if (this.valRows === 0) throw new Error(`${this.file}: there is no val split (${this.rows.count} rows, all used for training)`);
    return batchRanges(this.valRows, batchSize).map(([first, count]) => this.assemble(Array.from({ length: count }, (_, i) => this.trainRows + first + i), view));
  }

  /** The batch fields of the view, exactly as the data schema (check/dataSchema.ts) lists them. */
  private assemble(rows: readonly number[], view: BatchView): Batch {
    if (view === 'prompts' && this.format === 'chat') throw new Error(`${this.file}: chat datasets have no prompts view`);
    const B = rows.length;
    const T = this.seqLen;
    const store = this.rows;
    const prompts = (): BatchField => {
      const P = this.promptLen;
      const data = new BigInt64Array(B * P).fill(BigInt(this.pad));
      rows.forEach((r, i) => {
        const prompt = store.prompt(r);
        prompt.forEach((id, j) => (data[i * P + P - prompt.length + j] = BigInt(id)));
      });
      return { dtype: 'i64', shape: [B, P], data };
    };
    const tokens = (k: number): BatchField => {
      const data = new BigInt64Array(B * T).fill(BigInt(this.pad));
      rows.forEach((r, i) => store.sequence(r, k).tokens.forEach((id, j) => (data[i * T + j] = BigInt(id))));
      return { dtype: 'i64', shape: [B, T], data };
    };
    const mask = (k: number): BatchField => {
      const data = new Float32Array(B * T);
      rows.forEach((r, i) => data.set(store.sequence(r, k).mask, i * T));
      return { dtype: 'f32', shape: [B, T], data };
    };
    const text = (of: readonly string[]): BatchField => ({ dtype: 'str', shape: [B], data: rows.map((r) => of[r]!) });
    // Preference rows hold (chosen, rejected) as sequences 0 and 1; the others hold one.
    const producers: Record<string, () => BatchField> = {
      tokens: () => tokens(0),
      loss_mask: () => mask(0),
      chosen: () => tokens(0),
      chosen_mask: () => mask(0),
      rejected: () => tokens(1),
      rejected_mask: () => mask(1),
      prompt: prompts,
      prompt_text: () => text(store.promptTexts),
      answer: () => text(store.answers),
    };
    const batch: Batch = new Map();
    for (const field of DATASET_FORMATS[view === 'prompts' ? 'prompts' : this.format].fields) {
      const produce = producers[field.name];
      if (!produce) throw new Error(`JsonlDataset: no data for batch field '${field.name}' of ${this.format}`);
      batch.set(field.name, produce());
    }
    return batch;
  }
}

/** Parses one JSONL row and checks it has the format's fields with the right types. */
function parseRow(text: string, format: JsonlFormat, at: string): Record<string, unknown> {
  const required = REQUIRED_KEYS[format];
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch (e) {
    throw new Error(`${at}: not valid JSON: ${(e as Error).message}`);
  }
  if (row === null || typeof row !== 'object' || Array.isArray(row)) {
    throw new Error(`${at}: expected a JSON object with ${required.map((k) => `"${k}"`).join(', ')}`);
  }
  const record = row as Record<string, unknown>;
  const missing = required.filter((k) => !(k in record));
  if (missing.length) throw new Error(`${at}: a ${format} row needs ${missing.map((k) => `"${k}"`).join(', ')}`);
  if (format !== 'chat') {
    const wrong = required.find((k) => typeof record[k] !== 'string');
    if (wrong) throw new Error(`${at}: "${wrong}" must be a string, not ${describeJson(record[wrong])}`);
    return record;
  }
  const messages = record['messages'];
  if (!Array.isArray(messages) || messages.length === 0) throw new Error(`${at}: "messages" must be a non-empty array of {"role", "content"} messages`);
  messages.forEach((m: unknown, k) => {
    const msg = m as { role?: unknown; content?: unknown } | null;
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new Error(`${at}: messages[${k}] must be an object with "role" and "content"`);
    if (typeof msg.role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(msg.role)) {
      throw new Error(`${at}: messages[${k}].role must be one of ${CHAT_ROLES.map((r) => `"${r}"`).join(', ')}, not ${describeJson(msg.role)}`);
    }
    if (typeof msg.content !== 'string') throw new Error(`${at}: messages[${k}].content must be a string, not ${describeJson(msg.content)}`);
  });
  if (!messages.some((m: { role: string }) => m.role === 'assistant')) throw new Error(`${at}: a chat row needs at least one "assistant" message to train on`);
  return record;
}

/**
 * How many body tokens must go, from the left, for `head` and the pieces to fit in
 * `T` tokens. Only untrained tokens may go: cutting a trained one is an error.
 */
function droppedToFit(head: Int32Array, pieces: readonly Piece[], T: number, what: string): number {
  const total = pieces.reduce((n, p) => n + p.tokens.length, head.length);
  const dropped = Math.max(0, total - T);
  if (dropped === 0) return 0;
  let firstTrained = -1;
  let at = 0;
  for (const p of pieces) {
    if (p.trained && p.tokens.length > 0) {
      firstTrained = at;
      break;
    }
    at += p.tokens.length;
  }
  if (firstTrained >= 0 && dropped > firstTrained) {
    throw new Error(`${what} cannot fit in max_len ${T}: it needs ${total - firstTrained} tokens (only prompt tokens are truncated)`);
  }
  return dropped;
}

/**
 * Calls `each` with every line of a file and its 1-based number, reading the file a
 * megabyte at a time (a line may be any length).
 */
export function forEachLine(path: string, each: (line: string, number: number) => void): void {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    const decoder = new StringDecoder('utf8');
    let pending: string[] = [];
    let number = 1;
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) {
      const text = decoder.write(chunk.subarray(0, n));
      let from = 0;
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', from)) {
        pending.push(text.slice(from, nl));
        each(pending.length === 1 ? pending[0]! : pending.join(''), number++);
        pending = [];
        from = nl + 1;
      }
      if (from < text.length) pending.push(text.slice(from));
    }
    const rest = pending.join('') + decoder.end();
    each(rest, number);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// shared helpers

/** [first, rows] of each fixed batch over `count` examples: full batches, or one short batch when count < batchSize. */
function batchRanges(count: number, batchSize: number): [number, number][] {
  if (count < batchSize) return [[0, count]];
  const out: [number, number][] = [];
  for (let first = 0; first + batchSize <= count; first += batchSize) out.push([first, batchSize]);
  return out;
}

function copyTokens(from: Int32Array, start: number, length: number, to: BigInt64Array, at: number): void {
  for (let i = 0; i < length; i++) to[at + i] = BigInt(from[start + i]!);
}

/** 1-based line and column (in UTF-16 units) of `offset` in `text`. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

function checkInt(value: number, name: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}, not ${value}`);
}

function describeJson(value: unknown): string {
  return value === undefined ? 'missing' : Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
}
