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
import { readFileSync } from 'node:fs';
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

/** One token sequence of a row, fitted to T: ids and a 0/1 loss mask, unpadded. */
interface Sequence {
  tokens: Int32Array;
  mask: Uint8Array;
}

interface Row {
  line: number;
  promptText: string;
  answer: string;
  /** bos + the prompt tokens kept after truncation (empty for chat). */
  prompt: Int32Array;
  /** One sequence; two for preference (chosen, rejected). */
  sequences: Sequence[];
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
    private readonly rows: Row[],
    seqLen: number,
    pad: number,
    options: JsonlOptions,
  ) {
    const split = options.split ?? 1;
    if (!(split > 0 && split <= 1)) throw new Error(`${file}: split must be in (0, 1], not ${split}`);
    this.seqLen = seqLen;
    this.promptLen = rows.reduce((m, r) => Math.max(m, r.prompt.length), 0);
    this.trainRows = trainPart(rows.length, split);
    this.valRows = rows.length - this.trainRows;
    if (this.trainRows === 0) throw new Error(`${file}: the training split is empty (${rows.length} rows, split ${split})`);
    this.sampler = new EpochSampler(options.seed, this.trainRows);
    this.pad = pad;
  }

  static fromFile(path: string, format: JsonlFormat, tokenizer: Tokenizer, options: JsonlOptions): JsonlDataset {
    return JsonlDataset.fromText(readFileSync(path, 'utf8'), format, tokenizer, options, path);
  }

  /** `file` names the text in error messages. */
  static fromText(text: string, format: JsonlFormat, tokenizer: Tokenizer, options: JsonlOptions, file = '<jsonl>'): JsonlDataset {
    if (!Object.hasOwn(REQUIRED_KEYS, format)) throw new Error(`${file}: unknown dataset format '${format}' (expected ${Object.keys(REQUIRED_KEYS).join(', ')})`);
    if (options.maxLen != null) checkInt(options.maxLen, 'max_len', 2);
    const eos = tokenizer.special('eos');
    const pad = tokenizer.special('pad') ?? eos ?? 0;
    const head = sequenceHead(tokenizer, format);
    const template = options.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;

    // Parse and encode every row first: T defaults to the longest row.
    const parsed: { line: number; promptText: string; answer: string; prompt: Int32Array; bodies: { name: string; pieces: Piece[] }[] }[] = [];
    text.split('\n').forEach((raw, i) => {
      const line = i + 1;
      const trimmed = raw.trim();
      if (trimmed === '') return;
      const at = `${file}:${line}`;
      const record = parseRow(trimmed, format, at);
      try {
        if (format === 'chat') {
          const pieces = conversationPieces(tokenizer, template, record['messages'] as ChatMessage[]);
          parsed.push({ line, promptText: '', answer: '', prompt: new Int32Array(0), bodies: [{ name: 'the assistant messages', pieces }] });
          return;
        }
        const promptText = record['prompt'] as string;
        const prompt = promptBody(tokenizer, { format, prompt: promptText });
        const completions = format === 'preference' ? ['chosen', 'rejected'] : ['completion'];
        parsed.push({
          line,
          promptText,
          answer: record[completions[0]!] as string,
          prompt: prompt[0]!.tokens,
          bodies: completions.map((key) => ({
            name: format === 'preference' ? `the ${key} completion` : 'the completion',
            pieces: [...prompt, ...completionPieces(tokenizer, record[key] as string, key)],
          })),
        });
      } catch (e) {
        if (e instanceof PromptEncodeError) throw new Error(`${at}: ${e.message}`);
        throw e;
      }
    });
    if (parsed.length === 0) throw new Error(`${file} has no rows`);

    let longest = 0;
    for (const r of parsed) for (const b of r.bodies) longest = Math.max(longest, b.pieces.reduce((n, p) => n + p.tokens.length, head.length));
    const seqLen = options.maxLen ?? longest;
    const rows = parsed.map((r): Row => {
      const fitted = r.bodies.map((b) => fitSequence(head, b.pieces, seqLen, `${file}:${r.line}: ${b.name}`));
      // The prompt field keeps the prompt tokens that every sequence of the row kept.
      const dropped = Math.max(...fitted.map((f) => f.dropped));
      const prompt = format === 'chat' ? new Int32Array(0) : Int32Array.from([...head, ...r.prompt.subarray(dropped)]);
      return { line: r.line, promptText: r.promptText, answer: r.answer, prompt, sequences: fitted.map((f) => f.sequence) };
    });
    return new JsonlDataset(file, format, rows, seqLen, pad, options);
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
    return this.rows[index]!.line;
  }

  /** Training batch `step` (0-based). */
  trainBatch(step: number, batchSize: number, view: BatchView = 'full'): Batch {
    checkInt(step, 'step', 0);
    checkInt(batchSize, 'batch size', 1);
    const picked: Row[] = [];
    for (let i = 0; i < batchSize; i++) picked.push(this.rows[this.trainRow(step * batchSize + i)]!);
    return this.assemble(picked, view);
  }

  /** The val rows as fixed batches (see the header comment for the policy). */
  valBatches(batchSize: number, view: BatchView = 'full'): Batch[] {
    checkInt(batchSize, 'batch size', 1);
    if (this.valRows === 0) throw new Error(`${this.file}: there is no val split (${this.rows.length} rows, all used for training)`);
    return batchRanges(this.valRows, batchSize).map(([first, count]) => this.assemble(this.rows.slice(this.trainRows + first, this.trainRows + first + count), view));
  }

  /** The batch fields of the view, exactly as the data schema (check/dataSchema.ts) lists them. */
  private assemble(rows: readonly Row[], view: BatchView): Batch {
    if (view === 'prompts' && this.format === 'chat') throw new Error(`${this.file}: chat datasets have no prompts view`);
    const B = rows.length;
    const T = this.seqLen;
    const prompts = (): BatchField => {
      const P = this.promptLen;
      const data = new BigInt64Array(B * P).fill(BigInt(this.pad));
      rows.forEach((r, i) => r.prompt.forEach((id, j) => (data[i * P + P - r.prompt.length + j] = BigInt(id))));
      return { dtype: 'i64', shape: [B, P], data };
    };
    const tokens = (k: number): BatchField => {
      const data = new BigInt64Array(B * T).fill(BigInt(this.pad));
      rows.forEach((r, i) => r.sequences[k]!.tokens.forEach((id, j) => (data[i * T + j] = BigInt(id))));
      return { dtype: 'i64', shape: [B, T], data };
    };
    const mask = (k: number): BatchField => {
      const data = new Float32Array(B * T);
      rows.forEach((r, i) => data.set(r.sequences[k]!.mask, i * T));
      return { dtype: 'f32', shape: [B, T], data };
    };
    const text = (of: (r: Row) => string): BatchField => ({ dtype: 'str', shape: [B], data: rows.map(of) });
    // Preference rows hold (chosen, rejected) as sequences 0 and 1; the others hold one.
    const producers: Record<string, () => BatchField> = {
      tokens: () => tokens(0),
      loss_mask: () => mask(0),
      chosen: () => tokens(0),
      chosen_mask: () => mask(0),
      rejected: () => tokens(1),
      rejected_mask: () => mask(1),
      prompt: prompts,
      prompt_text: () => text((r) => r.promptText),
      answer: () => text((r) => r.answer),
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
 * Joins `head` and the pieces into at most `T` tokens, dropping untrained tokens from
 * the left of the body; `dropped` counts them. Dropping a trained token is an error.
 */
function fitSequence(head: Int32Array, pieces: readonly Piece[], T: number, what: string): { sequence: Sequence; dropped: number } {
  const body = pieces.flatMap((p) => [...p.tokens]);
  const trained = pieces.flatMap((p) => new Array<number>(p.tokens.length).fill(p.trained ? 1 : 0));
  const dropped = Math.max(0, head.length + body.length - T);
  const firstTrained = trained.indexOf(1);
  if (firstTrained >= 0 && dropped > firstTrained) {
    const needed = head.length + body.length - firstTrained;
    throw new Error(`${what} cannot fit in max_len ${T}: it needs ${needed} tokens (only prompt tokens are truncated)`);
  }
  return {
    sequence: {
      tokens: Int32Array.from([...head, ...body.slice(dropped)]),
      mask: Uint8Array.from([...Array.from(head, () => 0), ...trained.slice(dropped)]),
    },
    dropped,
  };
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
