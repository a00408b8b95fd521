/**
 * Shared by the generation tests: the small models of
 * test/fixtures/generation/models.pt-recipe, checked once, and random weights
 * large enough (normal, std 0.3) that logits differ clearly between tokens, so
 * greedy choices do not hinge on rounding.
 */
import { join } from 'node:path';
import { expect } from 'vitest';
import { checkFiles, type ModuleInfo } from '../../src/check/index.js';
import type { Graph } from '../../src/ir/graph.js';
import { Prng } from '../../src/runtime/prng.js';

export const MODELS_RECIPE = join(__dirname, '..', 'fixtures', 'generation', 'models.pt-recipe');

/** Stage → what its model is, for test names. */
export const GENERATION_STAGES: Readonly<Record<string, string>> = {
  learned: 'GPT-style (learned positions)',
  rotary: 'LLaMA-style (rope)',
  grouped: 'grouped-query attention (std.nn Llama)',
};

let cached: ModuleInfo | null = null;

/** The checked models recipe (checked once per test file). */
export function generationModule(): ModuleInfo {
  if (cached) return cached;
  const result = checkFiles([MODELS_RECIPE]);
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return (cached = result.entryModules[0]!);
}

/** normal(0, 0.3) weights for every parameter input of `g` (inputs named `<model>.<path>`). */
export function randomWeights(g: Graph, seed: number): Map<string, Float32Array> {
  const prng = new Prng(seed);
  const out = new Map<string, Float32Array>();
  for (const v of g.inputs) {
    const name = v.inputName!;
    if (!name.includes('.') || name.startsWith('past.')) continue;
    out.set(name, Float32Array.from({ length: v.shape.reduce((a, b) => a * b, 1) }, () => 0.3 * prng.normal()));
  }
  return out;
}
