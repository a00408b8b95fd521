/**
 * The sampler and the lockstep generation loop (runtime/generate.ts), without a
 * model: what greedy, temperature, top-k, top-p and the repetition penalty
 * choose, against probabilities computed by hand; and each sequence of a batch
 * stopping on its own.
 */
import { describe, expect, it } from 'vitest';
import { generateAll, pickToken } from '../../src/runtime/generate.js';
import { Prng } from '../../src/runtime/prng.js';

const ALL = [0, 1, 2, 3];
// Probabilities at temperature 1: softmax([ln 4, ln 3, ln 2, ln 1]) = [0.4, 0.3, 0.2, 0.1].
const LOGITS = [Math.log(4), Math.log(3), Math.log(2), 0];

/** How often each id is drawn in n picks. */
function frequencies(n: number, pick: (prng: Prng) => number): number[] {
  const prng = new Prng(42);
  const counts = new Array<number>(4).fill(0);
  for (let i = 0; i < n; i++) counts[pick(prng)]!++;
  return counts.map((c) => c / n);
}

describe('pickToken', () => {
  it('greedy takes the highest logit among the allowed ids, ties to the lowest id, and draws nothing', () => {
    const prng = new Prng(1);
    const before = prng.state();
    expect(pickToken([1, 5, 5, 2], ALL, { temperature: 0 }, prng)).toBe(1);
    expect(pickToken([1, 5, 5, 2], [0, 2, 3], { temperature: 0 }, prng)).toBe(2);
    expect(prng.state()).toEqual(before);
  });

  it('temperature 1 draws each id with its softmax probability; temperature 0.5 squares and renormalises them', () => {
    const t1 = frequencies(40000, (prng) => pickToken(LOGITS, ALL, { temperature: 1 }, prng));
    [0.4, 0.3, 0.2, 0.1].forEach((p, i) => expect(t1[i]).toBeCloseTo(p, 2));
    const t05 = frequencies(40000, (prng) => pickToken(LOGITS, ALL, { temperature: 0.5 }, prng));
    [16, 9, 4, 1].forEach((w, i) => expect(t05[i]).toBeCloseTo(w / 30, 2));
  });

  it('top-k keeps the k most likely; top-p the fewest whose probability reaches p', () => {
    const k2 = frequencies(40000, (prng) => pickToken(LOGITS, ALL, { temperature: 1, topK: 2 }, prng));
    [4 / 7, 3 / 7, 0, 0].forEach((p, i) => expect(k2[i]).toBeCloseTo(p, 2));
    // 0.4 + 0.3 = 0.7 < 0.75 ≤ 0.9: the top three, renormalised.
    const p75 = frequencies(40000, (prng) => pickToken(LOGITS, ALL, { temperature: 1, topP: 0.75 }, prng));
    [4 / 9, 3 / 9, 2 / 9, 0].forEach((p, i) => expect(p75[i]).toBeCloseTo(p, 2));
    expect(frequencies(100, (prng) => pickToken(LOGITS, ALL, { temperature: 1, topP: 0.01 }, prng))).toEqual([1, 0, 0, 0]);
  });

  it('the repetition penalty divides positive logits and multiplies negative ones of ids already in the sequence', () => {
    // id 0: 2 / 4 = 0.5 < id 1's 1; id 2: -1 · 4 = -4.
    expect(pickToken([2, 1, -1, -2], ALL, { temperature: 0, repetitionPenalty: 4 }, new Prng(0), [0, 2])).toBe(1);
    expect(pickToken([2, 1, -1, -2], ALL, { temperature: 0 }, new Prng(0), [0, 2])).toBe(0);
    expect(pickToken([-3, -3.5, -1, -2], ALL, { temperature: 0, repetitionPenalty: 4 }, new Prng(0), [2])).toBe(3);
  });
});

describe('generateAll', () => {
  it('lets each sequence stop on its own: a stop token, a stop string, the length; results in prompt order', async () => {
    // Sequence i emits the characters of its script, one per step.
    const scripts = ['ab|', 'xyz!q', 'mmmmmmmm'];
    const eos = 124; // '|'
    const asked: number[][] = [];
    const results = await generateAll(
      scripts.map(() => [0]),
      (active) => {
        asked.push(active.map((s) => s.index));
        return active.map((s) => scripts[s.index]!.charCodeAt(s.ids.length - 1));
      },
      { maxTokens: 6, stopIds: [eos], stopStrings: ['!'], decode: (ids) => String.fromCharCode(...ids) },
    );
    expect(results).toEqual([
      { ids: [97, 98], text: 'ab', reason: { kind: 'stop-token', id: eos } },
      { ids: [120, 121, 122, 33], text: 'xyz', reason: { kind: 'stop-string', text: '!' } },
      { ids: new Array(6).fill(109), text: 'mmmmmm', reason: { kind: 'length', tokens: 6 } },
    ]);
    expect(asked).toEqual([[0, 1, 2], [0, 1, 2], [0, 1, 2], [1, 2], [2], [2]]);
  });
});
