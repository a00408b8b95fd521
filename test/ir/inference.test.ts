/**
 * The KV-cache derivation (src/ir/lower/inference.ts) against the model's own
 * forward, all run by onnxruntime: the logits of prefill followed by k decode
 * steps equal those of the full forward on the same tokens (within 1e-5), for a
 * GPT-style model (learned position embeddings), a LLaMA-style one (rope,
 * RMSNorm, SwiGLU) and std.nn's Llama (grouped-query attention: 4 query heads
 * share 2 key/value heads, and the cache holds the 2), for one sequence and
 * for a left-padded batch of prompts of different lengths; and what the
 * derivation refuses, it names.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ModuleInfo } from '../../src/check/index.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { deriveCachedGraph } from '../../src/ir/lower/inference.js';
import { lowerForward, stageGraphSource } from '../../src/ir/lower/inferenceStage.js';
import { optimize } from '../../src/ir/passes/index.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { verifyGraph } from '../../src/ir/verify.js';
import { createSession, ort, type OrtSession, type OrtTensor } from '../../src/runtime/ort.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { GENERATION_STAGES, generationModule, randomWeights } from '../runtime/generate.harness.js';

let module: ModuleInfo;

beforeAll(() => {
  module = generationModule();
});

const weights = randomWeights;

async function session(g: Graph, w: ReadonlyMap<string, Float32Array>): Promise<OrtSession> {
  verifyGraph(g, 'derived');
  return createSession(emitModel(optimize(g).graph, { initializers: w }).bytes);
}

const i64 = (values: readonly number[], dims: readonly number[]): OrtTensor => new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), [...dims]);
const bool = (values: readonly boolean[], dims: readonly number[]): OrtTensor => new ort.Tensor('bool', Uint8Array.from(values, Number), [...dims]);
const f32 = (t: OrtTensor): Float32Array => t.data as Float32Array;

function generationGraphs(stage: string, batch: number, prompt: number, past: number) {
  const source = stageGraphSource(module, stage);
  return { prefill: source.prefill(batch, prompt), decode: source.decode(batch, past) };
}

/** Full-forward logits of one sequence, [T, V]. */
async function fullLogits(stage: string, tokens: readonly number[], w: ReadonlyMap<string, Float32Array>): Promise<Float32Array> {
  const s = await session(lowerForward(module, stage, 1, tokens.length), w);
  const out = await s.run({ tokens: i64(tokens, [1, tokens.length]) });
  await s.release();
  return f32(out['logits'] as OrtTensor);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Prefill of left-padded prompts, then decode steps feeding each row's `next`
 * tokens; returns each row's logits at every real position, [positions][V].
 * The cache is kept here as the runtime keeps it: fixed capacity C, new keys
 * and values written into their slot.
 */
async function cachedLogits(stage: string, prompts: readonly (readonly number[])[], next: readonly (readonly number[])[], w: ReadonlyMap<string, Float32Array>): Promise<Float32Array[][]> {
  const B = prompts.length;
  const S = Math.max(...prompts.map((p) => p.length));
  const steps = next[0]!.length;
  const C = S + steps - 1;
  const { prefill, decode } = generationGraphs(stage, B, S, C);
  const V = prefill.graph.outputs[0]!.value.shape[2]!;
  const pre = await session(prefill.graph, w);
  const dec = await session(decode.graph, w);
  const pad = prompts.map((p) => S - p.length);
  const tokens = prompts.flatMap((p, b) => [...new Array<number>(pad[b]!).fill(0), ...p]);
  const positions = prompts.flatMap((p, b) => [...new Array<number>(pad[b]!).fill(0), ...p.map((_, i) => i)]);
  const valid = prompts.flatMap((p, b) => [...new Array<boolean>(pad[b]!).fill(false), ...p.map(() => true)]);
  const out = await pre.run({ tokens: i64(tokens, [B, S]), positions: i64(positions, [B, S]), attention_mask: bool(valid, [B, S]) });
  const logits: Float32Array[][] = prompts.map(() => []);
  const all = f32(out['logits'] as OrtTensor);
  prompts.forEach((_, b) => {
    for (let t = pad[b]!; t < S; t++) logits[b]!.push(all.slice((b * S + t) * V, (b * S + t + 1) * V));
  });
  // The cache: [B, h, C, d] per site, slots 0..S-1 from the prefill.
  const cache = new Map<string, { data: Float32Array; dims: number[] }>();
  for (const site of prefill.sites) {
    for (const [present, pastName, shape] of [
      [site.presentKey, site.pastKey, site.keyShape],
      [site.presentValue, site.pastValue, site.valueShape],
    ] as const) {
      const [, h, , d] = shape as [number, number, number, number];
      const data = new Float32Array(B * h * C * d);
      const src = f32(out[present] as OrtTensor);
      for (let r = 0; r < B * h; r++) data.set(src.subarray(r * S * d, (r + 1) * S * d), r * C * d);
      cache.set(pastName, { data, dims: [B, h, C, d] });
      cache.set(present, cache.get(pastName)!);
    }
  }
  // Which of the C cache slots hold a real token, per row.
  const slotValid = prompts.map((_, b) => [...valid.slice(b * S, (b + 1) * S), ...new Array<boolean>(C - S).fill(false)]);
  for (let step = 0; step < steps; step++) {
    const slot = S + step;
    const feeds: Record<string, OrtTensor> = {
      tokens: i64(next.map((n) => n[step]!), [B, 1]),
      positions: i64(prompts.map((p) => p.length + step), [B, 1]),
      attention_mask: bool(slotValid.flatMap((row) => [...row, true]), [B, C + 1]),
    };
    for (const site of decode.sites) {
      for (const name of [site.pastKey, site.pastValue]) {
        const c = cache.get(name)!;
        feeds[name] = new ort.Tensor('float32', c.data, c.dims);
      }
    }
    const r = await dec.run(feeds);
    const l = f32(r['logits'] as OrtTensor);
    prompts.forEach((_, b) => logits[b]!.push(l.slice(b * V, (b + 1) * V)));
    if (step === steps - 1) break;
    for (const site of decode.sites) {
      for (const [present, pastName] of [
        [site.presentKey, site.pastKey],
        [site.presentValue, site.pastValue],
      ] as const) {
        const c = cache.get(pastName)!;
        const [, h, , d] = c.dims as [number, number, number, number];
        const src = f32(r[present] as OrtTensor);
        for (let row = 0; row < B * h; row++) c.data.set(src.subarray(row * d, (row + 1) * d), (row * C + slot) * d);
      }
    }
    slotValid.forEach((row) => (row[slot] = true));
  }
  await pre.release();
  await dec.release();
  return logits;
}

describe('prefill + decode steps equal the full forward (onnxruntime, |Δ| ≤ 1e-5)', () => {
  for (const [stage, label] of Object.entries(GENERATION_STAGES)) {
    it(`${label}: one sequence, 5 prompt tokens and 6 decode steps`, async () => {
      const w = weights(lowerForward(module, stage, 1, 1), 1);
      const sequence = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
      const rows = await cachedLogits(stage, [sequence.slice(0, 5)], [sequence.slice(5)], w);
      const full = await fullLogits(stage, sequence, w);
      const V = full.length / sequence.length;
      expect(rows[0]!).toHaveLength(sequence.length);
      rows[0]!.forEach((l, t) => expect(maxDiff(l, full.subarray(t * V, (t + 1) * V)), `position ${t}`).toBeLessThan(1e-5));
    });

    it(`${label}: a left-padded batch of prompts of lengths 2, 6 and 4, 4 decode steps`, async () => {
      const w = weights(lowerForward(module, stage, 1, 1), 2);
      const prompts = [
        [7, 2],
        [1, 2, 3, 4, 5, 6],
        [9, 8, 7, 6],
      ];
      const next = [
        [1, 1, 2, 3],
        [5, 8, 1, 3],
        [2, 1, 0, 4],
      ];
      const rows = await cachedLogits(stage, prompts, next, w);
      for (let b = 0; b < prompts.length; b++) {
        const sequence = [...prompts[b]!, ...next[b]!];
        const full = await fullLogits(stage, sequence, w);
        const V = full.length / sequence.length;
        expect(rows[b]!).toHaveLength(sequence.length);
        rows[b]!.forEach((l, t) => expect(maxDiff(l, full.subarray(t * V, (t + 1) * V)), `row ${b}, position ${t}`).toBeLessThan(1e-5));
      }
    });
  }
});

describe('the derived graphs', () => {
  it('have one cache per attention block, named by its scope, and the inputs and outputs the runtime feeds', () => {
    const { prefill, decode } = generationGraphs('rotary', 3, 5, 9);
    expect(prefill.sites.map((s) => s.block)).toEqual(['llama.blocks.0.attn', 'llama.blocks.1.attn']);
    expect(prefill.sites[0]).toMatchObject({ pastKey: 'past.llama.blocks.0.attn.key', presentValue: 'present.llama.blocks.0.attn.value', keyShape: [3, 2, 1, 8] });
    const io = (g: Graph) => ({
      inputs: g.inputs.filter((v) => !v.inputName!.startsWith('llama.')).map((v) => `${v.inputName}: ${v.dtype}[${v.shape.join(', ')}]`),
      outputs: g.outputs.map((o) => `${o.name}: [${o.value.shape.join(', ')}]`),
    });
    expect(io(prefill.graph)).toEqual({
      inputs: ['tokens: i64[3, 5]', 'positions: i64[3, 5]', 'attention_mask: bool[3, 5]'],
      outputs: ['logits: [3, 5, 15]', 'present.llama.blocks.0.attn.key: [3, 2, 5, 8]', 'present.llama.blocks.0.attn.value: [3, 2, 5, 8]', 'present.llama.blocks.1.attn.key: [3, 2, 5, 8]', 'present.llama.blocks.1.attn.value: [3, 2, 5, 8]'],
    });
    expect(io(decode.graph).inputs).toEqual([
      'tokens: i64[3, 1]',
      'positions: i64[3, 1]',
      'attention_mask: bool[3, 10]',
      'past.llama.blocks.0.attn.key: f32[3, 2, 9, 8]',
      'past.llama.blocks.0.attn.value: f32[3, 2, 9, 8]',
      'past.llama.blocks.1.attn.key: f32[3, 2, 9, 8]',
      'past.llama.blocks.1.attn.value: f32[3, 2, 9, 8]',
    ]);
    expect(io(decode.graph).outputs[1]).toBe('present.llama.blocks.0.attn.key: [3, 2, 1, 8]');
    // Grouped-query attention caches its 2 key/value heads, not the 4 query heads they serve.
    expect(stageGraphSource(module, 'grouped').decode(1, 3).sites[1]).toMatchObject({ block: 'gqa.blocks.1.attn', keyShape: [1, 2, 1, 4], valueShape: [1, 2, 1, 4] });
    // rope has no table to run out of; learned positions have 24 rows.
    expect(prefill.maxPositions).toBeNull();
    expect(stageGraphSource(module, 'learned').prefill(1, 24).maxPositions).toBe(24);
  });

  it("with present: 'all', present is the past followed by the new keys and values", () => {
    const decode = stageGraphSource(module, 'learned', 'all').decode(2, 7);
    expect(decode.graph.outputs.slice(1).map((o) => o.value.shape)).toEqual(new Array(4).fill([2, 2, 8, 8]));
  });

  it('refuses an attention whose keys are also used elsewhere, naming the block', () => {
    const b = new GraphBuilder('forward');
    const tokens = b.input('tokens', 'i64', [1, 3]);
    const table = b.input('m.table', 'f32', [5, 4]);
    const x = b.reshape(b.gather(table, tokens), [1, 1, 3, 4]);
    const scores = b.scoped('m.attn', () => b.matmul(x, b.transpose(x, [0, 1, 3, 2])));
    const causal = b.constant(makeTensor('bool', [3, 3], [1, 0, 0, 1, 1, 0, 1, 1, 1]));
    const att = b.scoped('m.attn', () => b.softmax(b.where(causal, scores, b.scalar(-Infinity)), 3));
    b.output('logits', b.reshape(b.matmul(att, x), [1, 3, 4]));
    expect(() => deriveCachedGraph(b.build(), { past: 2 })).toThrow(/deriving a KV cache in m\.attn: the keys or values are also used outside the attention/);
  });
});
