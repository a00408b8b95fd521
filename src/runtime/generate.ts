/**
 * Autoregressive generation, independent of how next-token logits are computed:
 *
 * - `generateAll` continues several prompts in lockstep: each step asks for one
 *   token per sequence still going, and each sequence stops on its own — at a stop
 *   token (eos), at a stop string, or after a number of tokens — and says which;
 * - `Sampler` chooses those tokens from logits: greedy, or temperature with top-k
 *   and top-p, an optional repetition penalty, each sequence with its own random
 *   stream (seeded by the run's seed and the sequence's index among the prompts),
 *   so a sequence's tokens never depend on which others share its batch.
 *
 * runtime/generateSession.ts computes the logits (prefill and decode graphs with a
 * KV cache, or the full forward for reference).
 */
import { mixSeed } from '../ir/seeds.js';
import { Prng } from './prng.js';
import type { Tokenizer } from './tokenizer.js';

/** Why generation stopped. */
export type StopReason =
  | { readonly kind: 'stop-token'; readonly id: number }
  | { readonly kind: 'stop-string'; readonly text: string }
  | { readonly kind: 'length'; readonly tokens: number };

export interface GenerateOptions {
  /** Most tokens to generate per sequence. */
  readonly maxTokens: number;
  /** Token ids that end generation (eos); the stop token is not part of the result. */
  readonly stopIds?: readonly number[];
  /** Texts that end generation once the generated text contains one; the result ends before it. */
  readonly stopStrings?: readonly string[];
  /** Text of generated ids; needed with stopStrings. */
  readonly decode?: (ids: readonly number[]) => string;
  /** Called with each token a sequence keeps, as it is chosen (streaming output). */
  readonly onToken?: (index: number, id: number) => void;
}

export interface Generation {
  /** The generated ids, without a stop token (ids that make up a stop string are kept). */
  readonly ids: readonly number[];
  /** The generated text, cut before a stop string; null when no decode was given. */
  readonly text: string | null;
  readonly reason: StopReason;
}

/** A sequence still being generated: its index among the prompts, and its ids so far (prompt first). */
export interface ActiveSequence {
  readonly index: number;
  readonly ids: readonly number[];
}

/** One token for each active sequence, in the order given. */
export type NextTokens = (active: readonly ActiveSequence[]) => readonly number[] | Promise<readonly number[]>;

/**
 * Generates after every prompt in lockstep: `next` gets the sequences still going
 * and returns one id for each. Results are in prompt order.
 */
export async function generateAll(prompts: readonly ArrayLike<number>[], next: NextTokens, options: GenerateOptions): Promise<Generation[]> {
  const stopIds = new Set(options.stopIds ?? []);
  const stopStrings = (options.stopStrings ?? []).filter((s) => s !== '');
  if (stopStrings.length && !options.decode) throw new Error('generate: stop strings need a decode function');
  const states = prompts.map((p, index) => ({ index, ids: Array.from(p), generated: [] as number[], result: null as Generation | null }));
  const text = (generated: readonly number[]): string | null => (options.decode ? options.decode(generated) : null);
  if (options.maxTokens <= 0) return states.map(() => ({ ids: [], text: text([]), reason: { kind: 'length', tokens: 0 } }));
  let active = states;
  while (active.length) {
    const ids = await next(active.map((s) => ({ index: s.index, ids: s.ids })));
    if (ids.length !== active.length) throw new Error(`generate: ${ids.length} tokens for ${active.length} sequences`);
    active.forEach((s, i) => {
      const id = ids[i]!;
      if (stopIds.has(id)) {
        s.result = { ids: s.generated, text: text(s.generated), reason: { kind: 'stop-token', id } };
        return;
      }
      s.ids.push(id);
      s.generated.push(id);
      options.onToken?.(s.index, id);
      if (stopStrings.length) {
        const sofar = options.decode!(s.generated);
        const hit = firstStop(sofar, stopStrings);
        if (hit) {
          s.result = { ids: s.generated, text: sofar.slice(0, hit.at), reason: { kind: 'stop-string', text: hit.stop } };
          return;
        }
      }
      if (s.generated.length >= options.maxTokens) s.result = { ids: s.generated, text: text(s.generated), reason: { kind: 'length', tokens: s.generated.length } };
    });
    active = active.filter((s) => s.result === null);
  }
  return states.map((s) => s.result!);
}

/** Generates after one prompt: `next` gets the prompt and the ids generated so far and returns the next id. */
export async function generate(prompt: ArrayLike<number>, next: (ids: readonly number[]) => number | Promise<number>, options: GenerateOptions): Promise<Generation> {
  const [result] = await generateAll([prompt], async ([s]) => [await next(s!.ids)], options);
  return result!;
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

/** How a token is chosen from logits. */
export interface SamplingOptions {
  /** Softmax temperature; 0 is greedy (the highest logit, ties to the lowest id). */
  readonly temperature: number;
  /** Sample among the k most likely tokens only; 0 (the default) keeps all. */
  readonly topK?: number;
  /** Sample among the fewest most likely tokens whose probabilities add up to p; 1 (the default) keeps all. */
  readonly topP?: number;
  /**
   * Divides the positive logits (multiplies the negative ones) of tokens already in
   * the sequence by this (the CTRL penalty); 1 (the default) is off.
   */
  readonly repetitionPenalty?: number;
}

/**
 * Chooses a token among `allowed` from `logits` (one row of the vocabulary), as
 * `sampling` says, drawing from `prng` (once, unless greedy). `previous`: the
 * sequence so far, for the repetition penalty.
 */
export function pickToken(logits: ArrayLike<number>, allowed: readonly number[], sampling: SamplingOptions, prng: Prng, previous: readonly number[] = []): number {
  const penalty = sampling.repetitionPenalty ?? 1;
  const seen = penalty !== 1 ? new Set(previous) : null;
  const score = (id: number): number => {
    const l = logits[id]!;
    return seen?.has(id) ? (l > 0 ? l / penalty : l * penalty) : l;
  };
  if (sampling.temperature === 0) {
    let best = allowed[0]!;
    let bestScore = -Infinity;
    for (const id of allowed) {
      const s = score(id);
      if (s > bestScore || (s === bestScore && id < best)) {
        best = id;
        bestScore = s;
      }
    }
    return best;
  }
  // Candidates in allowed order; top-k and top-p keep the most likely, in decreasing order (ties by id).
  let ids = allowed;
  let scores = allowed.map(score);
  const topK = sampling.topK ?? 0;
  const topP = sampling.topP ?? 1;
  if ((topK > 0 && topK < allowed.length) || topP < 1) {
    const order = allowed.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || allowed[a]! - allowed[b]!);
    const kept = topK > 0 ? order.slice(0, topK) : order;
    ids = kept.map((i) => allowed[i]!);
    scores = kept.map((i) => scores[i]!);
  }
  const max = scores.reduce((m, s) => Math.max(m, s), -Infinity);
  const p = scores.map((s) => Math.exp((s - max) / sampling.temperature));
  let sum = p.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    let cumulative = 0;
    let n = 0;
    while (n < p.length && cumulative < topP * sum) cumulative += p[n++]!;
    ids = ids.slice(0, Math.max(1, n));
    p.length = ids.length;
    sum = p.reduce((a, b) => a + b, 0);
  }
  let u = prng.uniform() * sum;
  for (let i = 0; i < ids.length; i++) {
    u -= p[i]!;
    if (u <= 0) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}

/** Samples an id from softmax(logits / temperature) over `allowed`. */
export function sampleToken(logits: ArrayLike<number>, temperature: number, prng: Prng, allowed: readonly number[]): number {
  return pickToken(logits, allowed, { temperature }, prng);
}

/**
 * Chooses tokens for many sequences: sequence i draws from its own stream,
 * seeded by mixSeed(seed, i), so its tokens depend only on the seed, its prompt
 * and the model — not on the batch it is generated in.
 */
export class Sampler {
  private readonly streams = new Map<number, Prng>();

  constructor(
    readonly sampling: SamplingOptions,
    readonly allowed: readonly number[],
    readonly seed: number,
  ) {}

  /** The token for sequence `s`, from its row of logits. */
  pick(s: ActiveSequence, logits: ArrayLike<number>): number {
    let prng = this.streams.get(s.index);
    if (!prng) this.streams.set(s.index, (prng = new Prng(mixSeed(this.seed, s.index))));
    return pickToken(logits, this.allowed, this.sampling, prng, s.ids);
  }
}
