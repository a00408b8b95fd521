/**
 * Types the checker infers for standard-library models, against values
 * computed independently here from the architecture's definition.
 */
import { describe, expect, it } from 'vitest';
import { typeOf } from './harness.js';

/** GPT-2 style parameter count: embeddings, L pre-norm blocks (attention + 4x MLP, with biases), final norm, bias-free head. */
function gptParams(vocab: number, ctx: number, d: number, layers: number): number {
  const embeddings = vocab * d + ctx * d;
  const layerNorm = 2 * d;
  const attention = d * 3 * d + 3 * d + d * d + d;
  const mlp = d * 4 * d + 4 * d + 4 * d * d + d;
  return embeddings + layers * (2 * layerNorm + attention + mlp) + layerNorm + d * vocab;
}

const recipe = (vocab: number, ctx: number, d: number, layers: number, heads: number): string => `
import std.nn { Transformer, RewardHead }
model gpt = Transformer(vocab: ${vocab}, ctx: ${ctx}, dim: ${d}, layers: ${layers}, heads: ${heads})
model rm = RewardHead(gpt)
`;

describe('standard library models', () => {
  for (const [vocab, ctx, d, layers, heads] of [
    [18, 64, 128, 4, 4],
    [54, 128, 256, 6, 8],
    [50257, 1024, 768, 12, 12],
  ] as const) {
    it(`Transformer(vocab: ${vocab}, ctx: ${ctx}, dim: ${d}, layers: ${layers}) has the GPT parameter count`, () => {
      const line = typeOf(recipe(vocab, ctx, d, layers, heads), 'gpt');
      expect(line).toContain(`${gptParams(vocab, ctx, d, layers).toLocaleString('en-US')} params`);
      expect(line).toContain(`forward(tokens: i64[B, T]) -> f32[B, T, ${vocab}]`);
    });
  }

  it('RewardHead shares the trunk and adds a scoring layer of dim + 1 parameters', () => {
    const [vocab, ctx, d, layers] = [18, 64, 128, 4];
    const line = typeOf(recipe(vocab, ctx, d, layers, 4), 'rm');
    const trunk = gptParams(vocab, ctx, d, layers) - d * vocab;
    expect(line).toContain(`${(trunk + d + 1).toLocaleString('en-US')} params`);
    expect(line).toContain('forward(tokens: i64[B, T]) -> f32[B]');
  });
});
