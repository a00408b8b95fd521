/**
 * Generation graphs with dynamic sizes (ir/symbolic.ts, dim_params in
 * targets/onnx/emit.ts), run by onnxruntime: one prefill model gives the logits
 * of the fixed-shape forward at batch 1, 3 and 16 and sequence 1, 17 and the
 * full context (24); one decode model serves any batch and cache length, and
 * greedy generation through the two gives the tokens of full recompute. The
 * dimension solver finds products and offsets, and refuses a size built into a
 * constant, naming the node.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ModuleInfo } from '../../src/check/index.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { dynamicGenerationGraphs, dynamicGraphSource, lowerForward, type DynamicGraph } from '../../src/ir/lower/inferenceStage.js';
import { optimize } from '../../src/ir/passes/index.js';
import { formatDim, symbolicDims } from '../../src/ir/symbolic.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { generateAll, Sampler } from '../../src/runtime/generate.js';
import { CachedLogits, RecomputedLogits, type LogitsSource } from '../../src/runtime/generateSession.js';
import { createSession, ort, type OrtSession, type OrtTensor } from '../../src/runtime/ort.js';
import { onnx } from '../../targets/onnx/proto.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { GENERATION_STAGES, generationModule, randomWeights } from '../runtime/generate.harness.js';

let module: ModuleInfo;
const graphs = new Map<string, { prefill: DynamicGraph; decode: DynamicGraph }>();

beforeAll(() => {
  module = generationModule();
  for (const stage of Object.keys(GENERATION_STAGES)) graphs.set(stage, dynamicGenerationGraphs(module, stage, 24));
});

const i64 = (values: readonly number[], dims: readonly number[]): OrtTensor => new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), [...dims]);
const ones = (n: number, dims: readonly number[]): OrtTensor => new ort.Tensor('bool', new Uint8Array(n).fill(1), [...dims]);

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('the dynamic prefill graph gives the logits of the fixed-shape forward (onnxruntime, |Δ| ≤ 1e-5)', () => {
  for (const [stage, label] of Object.entries(GENERATION_STAGES)) {
    it(`${label}: batch 1, 3, 16 × sequence 1, 17, 24`, async () => {
      const { prefill } = graphs.get(stage)!;
      const weights = randomWeights(prefill.graph, 4);
      const dynamic = await createSession(emitModel(prefill.graph, { initializers: weights, dims: prefill.dims }).bytes);
      for (const B of [1, 3, 16]) {
        for (const S of [1, 17, 24]) {
          const tokens = Array.from({ length: B * S }, (_, i) => (i * 7 + B) % 15);
          const positions = Array.from({ length: B * S }, (_, i) => i % S);
          const out = await dynamic.run({ tokens: i64(tokens, [B, S]), positions: i64(positions, [B, S]), attention_mask: ones(B * S, [B, S]) });
          const fixed: OrtSession = await createSession(emitModel(optimize(lowerForward(module, stage, B, S)).graph, { initializers: weights }).bytes);
          const reference = await fixed.run({ tokens: i64(tokens, [B, S]) });
          await fixed.release();
          expect((out['logits'] as OrtTensor).dims).toEqual([B, S, 15]);
          expect(maxDiff((out['logits'] as OrtTensor).data as Float32Array, (reference['logits'] as OrtTensor).data as Float32Array), `B ${B}, S ${S}`).toBeLessThan(1e-5);
          // The cache it returns has the batch's and the prompt's sizes too.
          const present = Object.keys(out).find((k) => k.startsWith('present.'))!;
          expect((out[present] as OrtTensor).dims[0]).toBe(B);
          expect((out[present] as OrtTensor).dims[2]).toBe(S);
        }
      }
      await dynamic.release();
    });
  }

  it('names its sizes in the model: dim_params batch, sequence and past_sequence', () => {
    const { prefill, decode } = graphs.get('grouped')!;
    const io = (g: DynamicGraph) => {
      const model = onnx.ModelProto.decode(emitModel(g.graph, { dims: g.dims }).bytes);
      const dims = (v: { name?: string | null; type?: { tensorType?: { shape?: { dim?: { dimParam?: string | null; dimValue?: unknown }[] | null } | null } | null } | null }) =>
        `${v.name}: [${v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || String(d.dimValue)).join(', ')}]`;
      return [...model.graph!.input!.filter((v) => !v.name!.startsWith('gqa.')).map(dims), ...model.graph!.output!.slice(0, 2).map(dims)];
    };
    expect(io(prefill)).toEqual([
      'tokens: [batch, sequence]',
      'positions: [batch, sequence]',
      'attention_mask: [batch, sequence]',
      'logits: [batch, sequence, 15]',
      'present.gqa.blocks.0.attn.key: [batch, 2, sequence, 4]',
    ]);
    expect(io(decode).slice(0, 4)).toEqual(['tokens: [batch, 1]', 'positions: [batch, 1]', 'attention_mask: [batch, past_sequence + 1]', 'past.gqa.blocks.0.attn.key: [batch, 2, past_sequence, 4]']);
  });
});

describe('greedy generation through the dynamic graphs', () => {
  it('gives the tokens of full recompute, for one prompt and a left-padded batch, with one session per graph', async () => {
    for (const stage of Object.keys(GENERATION_STAGES)) {
      const source = dynamicGraphSource(module, stage, 24);
      const weights = randomWeights(source.forward(1, 1), 17);
      const options = { contextLimit: 24, head: 0, maxTokens: 9, pad: 0 };
      const run = async (logits: LogitsSource, prompts: number[][]) => {
        const sampler = new Sampler({ temperature: 0 }, Array.from({ length: 15 }, (_, i) => i), 0);
        try {
          const out = await generateAll(prompts, async (active) => {
            const rows = await logits.next(active);
            return active.map((s, i) => sampler.pick(s, rows.subarray(i * logits.vocab, (i + 1) * logits.vocab)));
          }, { maxTokens: 9 });
          return out.map((g) => g.ids);
        } finally {
          await logits.release();
        }
      };
      const prompts = [[3], [1, 4, 1, 5, 9, 2], [6, 5, 3, 5]];
      const cached = new CachedLogits(source, weights, options);
      const batch = await run(cached, prompts);
      expect(cached.stats.compiled, stage).toBe(2);
      for (let i = 0; i < prompts.length; i++) expect(batch[i], `${stage}, prompt ${i}`).toEqual((await run(new RecomputedLogits(source, weights, options), [prompts[i]!]))[0]);
      expect((await run(new CachedLogits(source, weights, options), [prompts[1]!]))[0]).toEqual(batch[1]);
    }
  });
});

describe('a growing cache', () => {
  it('starts at 32 slots and doubles as the sequence grows, with one decode session, giving the tokens of full recompute', async () => {
    // rope has no table to outgrow: 80 positions for a model trained on 24.
    const source = dynamicGraphSource(module, 'rotary', 80);
    const weights = randomWeights(source.forward(1, 1), 5);
    const options = { contextLimit: 80, head: 0, maxTokens: 60, pad: 0 };
    const sampler = () => new Sampler({ temperature: 0 }, Array.from({ length: 15 }, (_, i) => i), 0);
    const generateWith = async (logits: LogitsSource) => {
      const pick = sampler();
      try {
        return (await generateAll([[1, 2, 3], [4, 5]], async (active) => {
          const rows = await logits.next(active);
          return active.map((s, i) => pick.pick(s, rows.subarray(i * logits.vocab, (i + 1) * logits.vocab)));
        }, { maxTokens: 60 })).map((g) => g.ids);
      } finally {
        await logits.release();
      }
    };
    const cached = new CachedLogits(source, weights, options);
    const tokens = await generateWith(cached);
    // 3 + 60 - 1 slots needed: 32, then 62; one prefill, one decode session throughout.
    expect(cached.stats).toEqual({ prefills: 1, steps: 59, compiled: 2 });
    expect(tokens[0]).toHaveLength(60);
    expect(tokens).toEqual(await generateWith(new RecomputedLogits(source, weights, { ...options, batch: 2 })));
  });
});

describe('symbolicDims', () => {
  /** x: [B, S, 4] → reshape [B·S, 4] → matmul → reshape [B, S, 2], and a slice of [B, S + 1] up to S. */
  function lowered(B: number, S: number): Graph {
    const b = new GraphBuilder('g');
    const x = b.input('x', 'f32', [B, S, 4]);
    const m = b.input('m', 'f32', [B, S + 1]);
    const w = b.input('w', 'f32', [4, 2]);
    b.output('y', b.reshape(b.matmul(b.reshape(x, [B * S, 4]), w), [B, S, 2]));
    b.output('z', b.slice(m, [0], [S], [1]));
    return b.build();
  }

  it('solves products and offsets, and finds each size on an input axis', () => {
    const dims = symbolicDims([lowered(2, 3), lowered(3, 5), lowered(5, 7)], [
      { name: 'batch', values: [2, 3, 5] },
      { name: 'sequence', values: [3, 5, 7] },
    ]);
    const g = lowered(2, 3);
    const shapes = [...g.inputs, ...g.nodes.flatMap((n) => n.outputs)].filter((v) => dims.shapes.has(v.id)).map((v) => dims.shapes.get(v.id)!.map(formatDim).join(', '));
    expect(shapes).toEqual(['batch, sequence, 4', 'batch, sequence + 1', 'batch*sequence, 4', 'batch*sequence, 2', 'batch, sequence, 2', 'batch, sequence']);
    // Attributes: the reshape targets, and the slice's end.
    expect([...dims.attrs.values()].map((a) => Object.entries(a).map(([k, v]) => `${k}: ${v.map(formatDim).join(', ')}`))).toEqual([['shape: batch*sequence, 4'], ['shape: batch, sequence, 2'], ['ends: sequence']]);
    expect(dims.symbols).toEqual([
      { name: 'batch', input: 'x', axis: 0 },
      { name: 'sequence', input: 'x', axis: 1 },
    ]);
  });

  it('refuses a constant whose shape depends on a size, naming its node', () => {
    const withMask = (S: number): Graph => {
      const b = new GraphBuilder('g');
      const x = b.input('x', 'f32', [S, S]);
      b.output('y', b.scoped('attn', () => b.where(b.constant(makeTensor('bool', [S, S])), x, b.scalar(0))));
      return b.build();
    };
    expect(() => symbolicDims([withMask(3), withMask(5), withMask(7)], [{ name: 'sequence', values: [3, 5, 7] }])).toThrow(
      /graph g with dynamic sizes \(sequence\): constant \(in attn\) holds a constant that depends on the sizes \(shape \[3, 3\]\)/,
    );
  });
});
