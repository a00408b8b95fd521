/**
 * Autoregressive generation, independent of how the next token is computed: a
 * loop that asks for one token at a time and stops at a stop token (eos), at a
 * stop string, or after a number of tokens, and says which.
 */
import type { Prng } from './prng.js';
import type { Tokenizer } from './tokenizer.js';

/** Why generation stopped. */
export type StopReason =
  | { readonly kind: 'stop-token'; readonly id: number }
  | { readonly kind: 'stop-string'; readonly text: string }
  | { readonly kind: 'length'; readonly tokens: number };

export interface GenerateOptions {
  /** Most tokens to generate. */
  readonly maxTokens: number;
  /** Token ids that end generation (eos); the stop token is not part of the result. */
  readonly stopIds?: readonly number[];
  /** Texts that end generation once the generated text contains one; the result ends before it. */
  readonly stopStrings?: readonly string[];
  /** Text of generated ids; needed with stopStrings. */
  readonly decode?: (ids: readonly number[]) => string;
}

export interface Generation {
  /** The generated ids, without a stop token (ids that make up a stop string are kept). */
  readonly ids: readonly number[];
  /** The generated text, cut before a stop string; null when no decode was given. */
  readonly text: string | null;
  readonly reason: StopReason;
}

/**
 * Generates after `prompt`: `next` gets the prompt and the ids generated so far and
 * returns the next id.
 */
export async function generate(prompt: ArrayLike<number>, next: (ids: readonly number[]) => number | Promise<number>, options: GenerateOptions): Promise<Generation> {
  const stopIds = new Set(options.stopIds ?? []);
  const stopStrings = (options.stopStrings ?? []).filter((s) => s !== '');
  if (stopStrings.length && !options.decode) throw new Error('generate: stop strings need a decode function');
  const ids = Array.from(prompt);
  const generated: number[] = [];
  const text = (): string | null => (options.decode ? options.decode(generated) : null);
  while (generated.length < options.maxTokens) {
    const id = await next(ids);
    if (stopIds.has(id)) return { ids: generated, text: text(), reason: { kind: 'stop-token', id } };
    ids.push(id);
    generated.push(id);
    if (stopStrings.length) {
      const sofar = options.decode!(generated);
      const hit = firstStop(sofar, stopStrings);
      if (hit) return { ids: generated, text: sofar.slice(0, hit.at), reason: { kind: 'stop-string', text: hit.stop } };
    }
  }
  return { ids: generated, text: text(), reason: { kind: 'length', tokens: generated.length } };
}

/** The earliest occurrence of any stop string in `text`. */
function firstStop(text: string, stops: readonly string[]): { at: number; stop: string } | null {
  let best: { at: number; stop: string } | null = null;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at >= 0 && (best === null || at < best.at)) best = { at, stop };
  }
  return best;
}

/**
 * The ids a model may generate: every ordinary token, plus eos so that it can end
 * its reply; never pad, bos or the other specials, which only frame sequences.
 */
export function generatableIds(tok: Tokenizer): number[] {
  const specials = new Set(tok.specials.map((name) => tok.special(name)!));
  const eos = tok.special('eos');
  return Array.from({ length: tok.vocab }, (_, id) => id).filter((id) => !specials.has(id) || id === eos);
}

/** Samples an id from softmax(logits / temperature) over `allowed`. */
export function sampleToken(logits: ArrayLike<number>, temperature: number, prng: Prng, allowed: readonly number[]): number {
  let max = -Infinity;
  for (const id of allowed) max = Math.max(max, logits[id]!);
  const p = new Float64Array(allowed.length);
  let sum = 0;
  allowed.forEach((id, i) => (sum += p[i] = Math.exp((logits[id]! - max) / temperature)));
  let u = prng.uniform() * sum;
  for (let i = 0; i < allowed.length; i++) {
    u -= p[i]!;
    if (u <= 0) return allowed[i]!;
  }
  return allowed[allowed.length - 1]!;
}
