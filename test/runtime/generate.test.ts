/**
 * Batched generation with a KV cache (runtime/generateSession.ts) against full
 * recompute, all through onnxruntime: greedy generation gives exactly the tokens
 * of the full forward at every step, for GPT-style, rope and grouped-query
 * models, for one prompt and for a left-padded batch of prompts of different
 * lengths; the context limit is kept by prefilling again; and the sampler
 * (runtime/generate.ts) is seeded per sequence, so a sequence's tokens do not
 * depend on the batch it is generated in.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ModuleInfo } from '../../src/check/index.js';
import { stageGraphSource, type GenerationGraphSource } from '../../src/ir/lower/inferenceStage.js';
import { generateAll, Sampler, type Generation, type SamplingOptions } from '../../src/runtime/generate.js';
import { CachedLogits, RecomputedLogits, type LogitsOptions, type LogitsSource } from '../../src/runtime/generateSession.js';
import { GENERATION_STAGES, generationModule, randomWeights } from './generate.harness.js';

let module: ModuleInfo;

beforeAll(() => {
  module = generationModule();
});

const VOCAB = 15;
const ALLOWED = Array.from({ length: VOCAB }, (_, i) => i);

/** Generates after `prompts` with `logits`, choosing tokens with `sampling`. */
async function run(logits: LogitsSource, prompts: readonly (readonly number[])[], sampling: SamplingOptions, maxTokens: number, seed = 0, indices?: readonly number[]): Promise<Generation[]> {
  const sampler = new Sampler(sampling, ALLOWED, seed);
  try {
    return await generateAll(
      prompts,
      async (active) => {
        const rows = await logits.next(active);
        // `indices` renumbers the sequences as if they sat elsewhere among the prompts.
        return active.map((s, i) => sampler.pick({ index: indices ? indices[s.index]! : s.index, ids: s.ids }, rows.subarray(i * logits.vocab, (i + 1) * logits.vocab)));
      },
      { maxTokens },
    );
  } finally {
    await logits.release();
  }
}

function setup(stage: string, seed: number, options: Partial<LogitsOptions> = {}) {
  const source: GenerationGraphSource = stageGraphSource(module, stage);
  const weights = randomWeights(source.forward(1, 1), seed);
  const opts: LogitsOptions = { contextLimit: 16, head: 0, maxTokens: 9, pad: 0, ...options };
  return { cached: () => new CachedLogits(source, weights, opts), recomputed: (batch = 1) => new RecomputedLogits(source, weights, { ...opts, batch }) };
}

const PROMPTS = [[3], [1, 4, 1, 5, 9, 2], [6, 5, 3, 5]];
const GREEDY = { temperature: 0 };

describe('greedy generation with the KV cache gives the tokens of full recompute', () => {
  for (const [stage, label] of Object.entries(GENERATION_STAGES)) {
    it(`${label}: one prompt, then a left-padded batch of prompts of lengths 1, 6 and 4`, async () => {
      const m = setup(stage, 17);
      const alone = await run(m.cached(), [PROMPTS[1]!], GREEDY, 9);
      const reference: Generation[] = [];
      for (const p of PROMPTS) reference.push(...(await run(m.recomputed(), [p], GREEDY, 9)));
      expect(alone[0]!.ids).toHaveLength(9);
      expect(alone[0]!.ids).toEqual(reference[1]!.ids);
      const batch = await run(m.cached(), PROMPTS, GREEDY, 9);
      expect(batch.map((g) => g.ids)).toEqual(reference.map((g) => g.ids));
      // Not a constant model: the continuations differ.
      expect(new Set(batch.map((g) => g.ids.join())).size).toBeGreaterThan(1);
    });
  }
});

describe('the context limit', () => {
  it('is kept by prefilling again from the most recent tokens; until then the tokens are those of full recompute', async () => {
    const m = setup('rotary', 5, { contextLimit: 10, maxTokens: 30 });
    const cached = m.cached();
    const [long] = await run(cached, [[1, 2, 3]], GREEDY, 30);
    expect(long!.ids).toHaveLength(30);
    // Context 10: the prompt (3) and 8 tokens (the 8th from a context of 10); then a prefill
    // of the last 7 (three quarters) every 4 tokens.
    expect(cached.stats.prefills).toBe(1 + Math.ceil((30 - 8) / 4));
    const [short] = await run(m.recomputed(), [[1, 2, 3]], GREEDY, 8);
    expect(long!.ids.slice(0, 8)).toEqual(short!.ids);
  });

  it('for learned positions is at most the rows of the position table', async () => {
    const m = setup('learned', 5, { contextLimit: 1000, maxTokens: 40 });
    const cached = m.cached();
    const [g] = await run(cached, [[1, 2]], GREEDY, 40);
    expect(g!.ids).toHaveLength(40);
    // The table has 24 rows: 22 tokens after the prompt of 2, then 7 per prefill of the last 18.
    expect(cached.stats.prefills).toBe(1 + Math.ceil((40 - 22) / 7));
  });
});

describe('sampling is seeded per sequence', () => {
  const SAMPLED = { temperature: 1, topK: 8, topP: 0.95 };

  it('same seed, same tokens; another seed, other tokens', async () => {
    const m = setup('learned', 3);
    const a = await run(m.cached(), PROMPTS, SAMPLED, 9, 7);
    const b = await run(m.cached(), PROMPTS, SAMPLED, 9, 7);
    const c = await run(m.cached(), PROMPTS, SAMPLED, 9, 8);
    expect(a.map((g) => g.ids)).toEqual(b.map((g) => g.ids));
    expect(a.map((g) => g.ids)).not.toEqual(c.map((g) => g.ids));
  });

  it('a sequence gets the same tokens alone as in a batch (cache or not)', async () => {
    const m = setup('grouped', 3);
    const batch = await run(m.cached(), PROMPTS, SAMPLED, 9, 7);
    const alone = await run(m.cached(), [PROMPTS[2]!], SAMPLED, 9, 7, [2]);
    const recomputed = await run(m.recomputed(), [PROMPTS[2]!], SAMPLED, 9, 7, [2]);
    expect(alone[0]!.ids).toEqual(batch[2]!.ids);
    expect(recomputed[0]!.ids).toEqual(batch[2]!.ids);
  });
});
