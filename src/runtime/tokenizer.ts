/**
 * Run-time tokenizers for `chars(...)`, `bytes(...)` and `hf(...)`, numbered exactly as the
 * checker counts them (check/builtins.ts, `tokenizerRule`): the base symbols
 * first (the alphabet's characters by code point, the 256 byte values, or the ids of
 * a tokenizer.json), then the specials in the order the recipe lists them. So
 * vocab = base + specials.
 */
import { createContext, Script } from 'node:vm';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { tokenizerJsonVocabSize } from '../check/builtins.js';
import { UserError } from './errors.js';

export interface DecodeOptions {
  /** Render special tokens as `<name>` instead of dropping them. */
  showSpecials?: boolean;
}

export interface Tokenizer {
  readonly kind: 'chars' | 'bytes' | 'hf';
  readonly vocab: number;
  readonly specials: readonly string[];
  /** Token ids of `text` (no specials added); throws an EncodeError for a character outside the vocabulary. */
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number | bigint>, options?: DecodeOptions): string;
  /** The id of a special token, or null when the tokenizer has none by that name. */
  special(name: string): number | null;
}

/** A character the tokenizer cannot encode; `index` is its UTF-16 offset in the encoded string. */
export class EncodeError extends UserError {
  constructor(
    readonly char: string,
    readonly index: number,
    tokenizer: string,
  ) {
    super(`${tokenizer} cannot encode ${describeChar(char)} at index ${index}`);
  }
}

/** A tokenizer over the alphabet's characters (ids 0..n-1, by code point) followed by the specials. */
export function chars(alphabet: string, specials: readonly string[] = []): Tokenizer {
  const symbols = [...alphabet];
  const ids = new Map<string, number>();
  symbols.forEach((c, i) => {
    // The checker rejects duplicates; numbering past one would shift every later id.
    if (ids.has(c)) throw new Error(`chars: ${describeChar(c)} appears twice in the alphabet`);
    ids.set(c, i);
  });
  const specialIds = specialTable('chars', specials, symbols.length);
  const vocab = symbols.length + specials.length;
  return {
    kind: 'chars',
    vocab,
    specials: [...specials],
    encode(text) {
      // One id per code point: at most one per UTF-16 unit, so this array is big enough
      // (no growing JS array: a 50 MB text must not cost gigabytes).
      const out = new Int32Array(text.length);
      let n = 0;
      let index = 0;
      for (const c of text) {
        const id = ids.get(c);
        if (id === undefined) throw new EncodeError(c, index, 'chars tokenizer');
        out[n++] = id;
        index += c.length;
      }
      return n === out.length ? out : out.slice(0, n);
    },
    decode(tokens, options = {}) {
      let text = '';
      for (let i = 0; i < tokens.length; i++) {
        const id = checkId(tokens[i]!, i, vocab);
        text += id < symbols.length ? symbols[id]! : options.showSpecials ? `<${specials[id - symbols.length]}>` : '';
      }
      return text;
    },
    special: (name) => specialIds.get(name) ?? null,
  };
}

/** A tokenizer over UTF-8 bytes (ids 0..255) followed by the specials. Every string encodes. */
export function bytes(specials: readonly string[] = []): Tokenizer {
  const specialIds = specialTable('bytes', specials, 256);
  const decoder = new TextDecoder('utf-8'); // not fatal: a model may emit invalid UTF-8
  const vocab = 256 + specials.length;
  return {
    kind: 'bytes',
    vocab,
    specials: [...specials],
    encode: (text) => Int32Array.from(new TextEncoder().encode(text)),
    decode(tokens, options = {}) {
      let text = '';
      let run: number[] = [];
      const flush = (): void => {
        text += decoder.decode(Uint8Array.from(run));
        run = [];
      };
      for (let i = 0; i < tokens.length; i++) {
        const id = checkId(tokens[i]!, i, vocab);
        if (id < 256) {
          run.push(id);
          continue;
        }
        flush();
        if (options.showSpecials) text += `<${specials[id - 256]}>`;
      }
      flush();
      return text;
    },
    special: (name) => specialIds.get(name) ?? null,
  };
}

/** Tokenizing took longer than its bound: most likely a regex in tokenizer.json that backtracks catastrophically. */
export class TokenizerTimeoutError extends UserError {}

/** A Hugging Face tokenizer.json that cannot be used (a malformed regex, an unknown model type). */
export class TokenizerFileError extends UserError {}

/**
 * The time tokenizing `chars` characters may take: 5 s, plus 1 s per 100,000
 * characters (a real tokenizer does several MB/s; a catastrophic regex can take
 * hours over one line of 40 characters).
 */
export function tokenizeBoundMs(chars: number): number {
  return 5000 + chars / 100;
}

/** One context and script for every bounded run: `job()` calls the body. */
const guard = { context: createContext({ job: null as (() => unknown) | null }), script: new Script('job()'), active: false };

/**
 * Runs `body` with a wall-clock bound: past `ms`, V8 terminates it — a regex deep in
 * catastrophic backtracking included — and a TokenizerTimeoutError with `why()`
 * is thrown. Nested calls run inside the outermost bound (one bound for loading a
 * whole dataset, not one per row).
 */
export function withTimeBound<T>(ms: number, why: () => string, body: () => T): T {
  if (guard.active) return body();
  guard.active = true;
  (guard.context as { job: (() => unknown) | null }).job = body;
  try {
    return guard.script.runInContext(guard.context, { timeout: Math.max(1, Math.round(ms)) }) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw new TokenizerTimeoutError(why());
    throw e;
  } finally {
    guard.active = false;
    (guard.context as { job: (() => unknown) | null }).job = null;
  }
}

/** The regexes a tokenizer.json runs on text (pre-tokenizer and normalizer `Split`/`Replace` patterns). */
export function tokenizerRegexes(json: unknown): string[] {
  const found: string[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'Regex' && typeof x === 'string') found.push(x);
        else if (k === 'pre_tokenizer' || k === 'normalizer' || k === 'pretokenizers' || k === 'normalizers' || k === 'pattern') visit(x);
      }
    }
  };
  visit(json);
  return found;
}

/** Options of {@link hf}. */
export interface HfOptions {
  /** Milliseconds one encode may take (default: tokenizeBoundMs of its length). */
  readonly timeBoundMs?: number;
}

/**
 * A Hugging Face tokenizer.json (through @huggingface/tokenizers), its ids as the file
 * numbers them, then the recipe's specials after the last of them, as the checker counts.
 * `own` are the tokenizer's own special tokens (tokenizer_config.json's bos, eos, …) with
 * their ids in the file. Text it has no token for becomes its unknown token, as in the
 * reference library. Its regexes run under a time bound (withTimeBound): a
 * pathological tokenizer.json is an error, not a hang.
 */
export function hf(tokenizerJson: unknown, specials: readonly string[] = [], file = 'tokenizer.json', own: ReadonlyMap<string, number> = new Map(), options: HfOptions = {}): Tokenizer {
  const base = tokenizerJsonVocabSize(tokenizerJson);
  if (base === null) throw new TokenizerFileError(`${file}: has no "model.vocab"; expected a Hugging Face tokenizer.json`);
  let tokenizer: HfTokenizer;
  try {
    tokenizer = new HfTokenizer(tokenizerJson as object, {});
  } catch (e) {
    throw new TokenizerFileError(`${file}: cannot be used as a tokenizer: ${(e as Error).message}`);
  }
  const specialIds = specialTable('hf', specials, base);
  const vocab = base + specials.length;
  const regexes = tokenizerRegexes(tokenizerJson);
  const slow = (chars: number, ms: number) => (): string =>
    `${file}: tokenizing ${chars.toLocaleString('en-US')} characters took longer than ${(ms / 1000).toFixed(1)} s; ` +
    (regexes.length ? `its regex ${JSON.stringify(regexes[0]!.length > 80 ? `${regexes[0]!.slice(0, 80)}…` : regexes[0])} may backtrack catastrophically on this text` : 'the tokenizer file may be pathological');
  return {
    kind: 'hf',
    vocab,
    specials: [...specials, ...[...own.keys()].filter((name) => !specialIds.has(name))],
    encode(text) {
      const ms = options.timeBoundMs ?? tokenizeBoundMs(text.length);
      return withTimeBound(ms, slow(text.length, ms), () => Int32Array.from(tokenizer.encode(text, { add_special_tokens: false }).ids));
    },
    decode(tokens, options = {}) {
      const ids = Array.from(tokens, (t, i) => checkId(t, i, vocab));
      // Without specials shown, one decode of the rest keeps the tokenizer's own spacing.
      if (!options.showSpecials) return tokenizer.decode(ids.filter((id) => id < base));
      const parts: string[] = [];
      let run: number[] = [];
      const flush = (): void => {
        if (run.length) parts.push(tokenizer.decode(run));
        run = [];
      };
      for (const id of ids) {
        if (id < base) run.push(id);
        else {
          flush();
          parts.push(`<${specials[id - base]}>`);
        }
      }
      flush();
      return parts.join('');
    },
    special: (name) => specialIds.get(name) ?? own.get(name) ?? null,
  };
}

function specialTable(kind: string, specials: readonly string[], first: number): Map<string, number> {
  const table = new Map<string, number>();
  specials.forEach((s, i) => {
    if (table.has(s)) throw new Error(`${kind}: special token '${s}' is listed twice`);
    table.set(s, first + i);
  });
  return table;
}

function checkId(raw: number | bigint, position: number, vocab: number): number {
  const id = Number(raw);
  if (!Number.isInteger(id) || id < 0 || id >= vocab) {
    throw new Error(`token id ${raw} at position ${position} is outside the vocabulary (0..${vocab - 1})`);
  }
  return id;
}

/** `"é" (U+00E9)`: the character and its code point, readable even for invisible ones. */
export function describeChar(c: string): string {
  return `${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`;
}
