/**
 * Lowering checked recipes to IR: parameter sets and counts, weight-decay
 * groups, the train-step's inputs and outputs, a golden textual IR, and the
 * reference evaluator agreeing with onnxruntime on the lowered graphs.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../src/check/index.js';
import { lowerTrainStage } from '../../src/ir/lower/trainStage.js';
import { printGraph } from '../../src/ir/printer.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import { initialParams } from '../../src/runtime/init.js';
import { runOnce } from '../../src/runtime/ort.js';
import { emitModel } from '../../targets/onnx/emit.js';

const ROOT = join(__dirname, '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures');

function plan(file: string, stage: string | null = null) {
  const result = checkFiles([file]);
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return lowerTrainStage(result.entryModules[0]!, stage);
}

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

describe('lowering train stages', () => {
  it('gives the quickstart GPT the parameter count of the GPT formula', () => {
    const p = plan(join(ROOT, 'examples', 'quickstart.pt-recipe'));
    const [V, C, d, L] = [54, 64, 128, 4];
    const formula = V * d + C * d + L * (12 * d * d + 13 * d) + 2 * d + d * V;
    expect(p.params.reduce((n, q) => n + size(q.shape), 0)).toBe(formula);
    expect(p.params.every((q) => q.trainable && q.model === 'gpt')).toBe(true);
    expect(p.settings.batchSize).toBe(16);
    expect(p.settings.steps).toBe(1000);
    expect(p.data['train']!.fields).toEqual([{ input: 'batch.tokens', field: 'tokens', dtype: 'i64', shape: [16, 64] }]);
  });

  it('decays matmul weights only: not norms, biases, token or position embeddings', () => {
    const p = plan(join(ROOT, 'examples', 'quickstart.pt-recipe'));
    const decayed = p.params.filter((q) => q.decay).map((q) => q.name);
    expect(decayed).toContain('blocks.0.attn.qkv.w');
    expect(decayed).toContain('blocks.3.ff.down.w');
    expect(decayed).toContain('head.w');
    for (const name of decayed) expect(name).toMatch(/\.w$/);
    expect(decayed).not.toContain('embed.token.table');
    expect(decayed).not.toContain('embed.pos');
    expect(decayed.some((n) => n.includes('norm'))).toBe(false);
    expect(decayed).toHaveLength(4 * 4 + 1);
  });

  it('feeds every new parameter and optimizer slot back to its input, with the same shape', () => {
    const p = plan(join(FIXTURES, 'train', 'tiny.pt-recipe'));
    const g = p.graphs['train_step']!;
    const inputs = new Map(g.inputs.map((v) => [v.inputName!, v.shape]));
    const outputs = new Map(g.outputs.map((o) => [o.name, o.value.shape]));
    expect(Object.keys(p.feedback)).toHaveLength(p.params.length * 3);
    for (const [out, input] of Object.entries(p.feedback)) expect(outputs.get(out), out).toEqual(inputs.get(input));
    expect([...outputs.keys()].slice(0, 3)).toEqual(['loss', 'grad_norm', 'lr']);
    expect(p.state.map((s) => s.slot)).toEqual(p.params.flatMap(() => ['m', 'v']));
  });

  it('matches the golden textual IR of the tiny model (UPDATE_GOLDEN=1 rewrites it)', () => {
    const p = plan(join(FIXTURES, 'train', 'tiny.pt-recipe'));
    const text = printGraph(p.graphs['inference']!);
    const golden = join(FIXTURES, 'ir', 'tiny.inference.ir');
    if (process.env.UPDATE_GOLDEN || !existsSync(golden)) writeFileSync(golden, text);
    expect(text).toBe(readFileSync(golden, 'utf8'));
    // Lowering is deterministic: a second lowering prints the same text.
    expect(printGraph(plan(join(FIXTURES, 'train', 'tiny.pt-recipe')).graphs['inference']!)).toBe(text);
  });

  it.each(['tiny.pt-recipe', 'llama.pt-recipe'])('%s: the train step in onnxruntime matches the float64 reference evaluator', async (recipe) => {
    const p = plan(join(FIXTURES, 'train', recipe));
    const feeds = new Map<string, Tensor>();
    for (const [name, data] of initialParams(p.params, 1)) feeds.set(name, makeTensor('f32', p.params.find((q) => q.input === name)!.shape, data));
    for (const s of p.state) feeds.set(s.input, makeTensor('f32', s.shape));
    const tokens = Array.from({ length: 4 * 16 }, (_, i) => (i * 7) % 17);
    feeds.set('batch.tokens', makeTensor('i64', [4, 16], tokens));
    feeds.set('step', makeTensor('i64', [], [3]));
    feeds.set('seed', makeTensor('i64', [], [11]));
    const reference = evaluateGraph(p.graphs['train_step']!, feeds);
    const onnx = await runOnce(emitModel(p.graphs['train_step']!).bytes, feeds);
    for (const [name, ref] of reference) {
      const got = onnx.get(name)!;
      const scale = Math.max(1e-3, ...Array.from(ref.data, Math.abs));
      const worst = Math.max(...Array.from(ref.data, (v, i) => Math.abs(v - got.data[i]!)));
      expect(worst / scale, name).toBeLessThan(2e-4);
    }
  });
});
