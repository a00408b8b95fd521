/**
 * Generation: tokens/s with the KV cache (prefill, then one decode step per
 * token: runtime/generateSession.ts with the plan's dynamic-size graphs) against
 * full recompute (the forward over the whole sequence for every token), at 128
 * and 512 new tokens, batch 1 and 16; then the decode step's latency against the
 * ORT MatMul roofline of its FLOPs.
 *
 * Model: the quickstart GPT (dim 128, 4 layers, 4 heads) with ctx 640, so a
 * 16-token prompt and 512 new tokens fit; initial weights (timing does not depend
 * on them); greedy choice.
 *
 * Every time is the fastest of several runs (5 generations, 3 forwards): on a
 * shared 2-core machine the slower runs measure the other processes.
 *
 * - cache: the whole generation, timed (after a warm-up generation that creates
 *   the sessions): B·N tokens / seconds.
 * - recompute: token n costs one forward over the 16 + n tokens so far. That
 *   forward (the dynamic prefill graph, one session for every length) is timed at
 *   8 lengths spread over the run and the total is the sum over all N lengths,
 *   interpolated linearly: generating every token this way would take minutes at
 *   batch 16 and 512 tokens, and each token's cost is exactly that forward.
 * - decode step vs roofline: one decode step at batch B after C cached slots,
 *   against the time onnxruntime's MatMul alone needs for the step's matmuls (each
 *   distinct shape timed in a one-node graph in the same run). Its FLOPs are
 *   the matmuls' (projections, MLP, head, and attention over the C + 1 slots).
 *   C = 128 and C = 512 show what attending over unused slots costs: why the
 *   cache starts small and doubles (generateSession.ts).
 *
 *   npm run bench -- --only generation
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { checkSource } from '../src/check/index.js';
import { deriveCachedGraph } from '../src/ir/lower/inference.js';
import { dynamicGraphSource, lowerForward } from '../src/ir/lower/inferenceStage.js';
import { lowerTrainStage } from '../src/ir/lower/trainStage.js';
import { optimize } from '../src/ir/passes/index.js';
import { generateAll, Sampler } from '../src/runtime/generate.js';
import { CachedLogits, SessionPool } from '../src/runtime/generateSession.js';
import { initialParams } from '../src/runtime/init.js';
import { ort, type OrtTensor } from '../src/runtime/ort.js';
import { Prng } from '../src/runtime/prng.js';
import { matmulStats, shapeText } from './graph-stats.js';
import { sampleMix } from './matmul.js';
import { describe, makeWorkdir, paramCount, QUICKSTART, recipeText, type ModelConfig } from './models.js';
import { fmt, median, table } from './util.js';

const MODEL: ModelConfig = { ...QUICKSTART, name: 'quickstart-ctx640', ctx: 640, batch: 1 };
const PROMPT = 16;
const NEW_TOKENS = [128, 512];
const BATCHES = [1, 16];
/** Sequence lengths at which the recompute forward is timed. */
const SAMPLED_LENGTHS = 8;

/** The fastest of `n` runs of `f` (seconds). */
async function fastest(n: number, f: () => Promise<number>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < n; i++) best = Math.min(best, await f());
  return best;
}

const i64 = (values: ArrayLike<number>, dims: readonly number[]): OrtTensor => new ort.Tensor('int64', BigInt64Array.from(Array.from(values), (v) => BigInt(v)), [...dims]);

export async function runGeneration(): Promise<void> {
  const workdir = makeWorkdir();
  try {
    const path = join(workdir, `${MODEL.name}.pt-recipe`);
    writeFileSync(path, recipeText(MODEL));
    const module = checkSource(recipeText(MODEL), path).entryModules[0]!;
    const plan = lowerTrainStage(module, null, { batchSize: 1, steps: 1 });
    const generation = plan.generation!;
    const weights = initialParams(plan.params, 0);
    const vocab = plan.graphs['prefill']!.outputs[0]!.value.shape[2]!;
    console.log(`model: ${describe(MODEL)}; ${paramCount(plan).toLocaleString('en-US')} parameters; prompt ${PROMPT} tokens, greedy\n`);
    const source = dynamicGraphSource(module, plan.stage, generation.maxPositions);
    const pool = new SessionPool(weights, {});
    const prng = new Prng(1);
    const prompts = (B: number): number[][] => Array.from({ length: B }, () => Array.from({ length: PROMPT }, () => 3 + prng.int(vocab - 3)));
    const allowed = Array.from({ length: vocab }, (_, i) => i);

    /** Seconds for the whole cached generation of N tokens after each of B prompts. */
    const cached = async (B: number, N: number, fixedCapacity = false): Promise<number> => {
      const logits = new CachedLogits(source, weights, { contextLimit: generation.maxPositions, head: 0, maxTokens: N, pad: 0, pool, fixedCapacity });
      const sampler = new Sampler({ temperature: 0 }, allowed, 0);
      const batch = prompts(B);
      const t0 = performance.now();
      await generateAll(batch, async (active) => {
        const rows = await logits.next(active);
        return active.map((s, i) => sampler.pick(s, rows.subarray(i * vocab, (i + 1) * vocab)));
      }, { maxTokens: N });
      const seconds = (performance.now() - t0) / 1000;
      await logits.release();
      return seconds;
    };

    // The recompute forward: the prefill graph on all tokens so far (positions 0.., every token real).
    const prefill = await pool.session(source.prefill(1, 1));
    const forward = async (B: number, T: number): Promise<number> => {
      const tokens = i64(Array.from({ length: B * T }, (_, i) => 3 + (i % (vocab - 3))), [B, T]);
      const positions = i64(Array.from({ length: B * T }, (_, i) => i % T), [B, T]);
      const mask = new ort.Tensor('bool', new Uint8Array(B * T).fill(1), [B, T]);
      const times: number[] = [];
      for (let r = 0; r < 4; r++) {
        const t0 = performance.now();
        await prefill.run({ tokens, positions, attention_mask: mask });
        if (r > 0) times.push((performance.now() - t0) / 1000);
      }
      return Math.min(...times);
    };
    /** Seconds to generate N tokens by recomputing: Σ over n < N of forward(16 + n), from SAMPLED_LENGTHS timed lengths. */
    const recomputed = async (B: number, N: number): Promise<number> => {
      const lengths = Array.from({ length: SAMPLED_LENGTHS }, (_, k) => PROMPT + Math.round((k * (N - 1)) / (SAMPLED_LENGTHS - 1)));
      const times: number[] = [];
      for (const T of lengths) times.push(await forward(B, T));
      let total = 0;
      for (let n = 0; n < N; n++) {
        const T = PROMPT + n;
        const k = Math.min(SAMPLED_LENGTHS - 2, lengths.findIndex((_, i) => i === SAMPLED_LENGTHS - 1 || lengths[i + 1]! >= T));
        const [a, b] = [lengths[k]!, lengths[k + 1]!];
        total += times[k]! + ((times[k + 1]! - times[k]!) * (T - a)) / Math.max(1, b - a);
      }
      return total;
    };

    await cached(2, 8); // warm-up: sessions, JIT
    const rows: string[][] = [];
    for (const N of NEW_TOKENS) {
      for (const B of BATCHES) {
        const withCache = await fastest(5, () => cached(B, N));
        const without = await recomputed(B, N);
        rows.push([String(N), String(B), fmt((B * N) / withCache, 0), fmt((B * N) / without, 0), `${fmt(without / withCache, 1)}×`, fmt(withCache, 2), fmt(without, 2)]);
      }
    }
    console.log(table(['new tokens', 'batch', 'cache tok/s', 'recompute tok/s', 'speed-up', 'cache s', 'recompute s'], rows));
    // The cache's layout: grown by doubling (the default) vs sized for the whole generation from the start.
    const grown = await fastest(3, () => cached(16, 512));
    const fixed = await fastest(3, () => cached(16, 512, true));
    console.log(`\nbatch 16, 512 new tokens: growing cache ${fmt((16 * 512) / grown, 0)} tok/s, fixed capacity ${fmt((16 * 512) / fixed, 0)} tok/s (growing ${fmt(fixed / grown, 2)}× faster)`);

    // One decode step vs the MatMul roofline.
    const decode = await pool.session(source.decode(1, 1));
    const stepRows: string[][] = [];
    const notes: string[] = [];
    for (const B of BATCHES) {
      for (const C of [128, 512]) {
        // The step at these sizes, for its matmul shapes and FLOPs.
        const g = optimize(deriveCachedGraph(lowerForward(module, plan.stage, B, 1, 'decode'), { past: C, positionLimit: generation.maxPositions }).graph).graph;
        const mm = matmulStats(g);
        const feeds: Record<string, OrtTensor> = {
          tokens: i64(new Array(B).fill(5), [B, 1]),
          positions: i64(new Array(B).fill(C), [B, 1]),
          attention_mask: new ort.Tensor('bool', new Uint8Array(B * (C + 1)).fill(1), [B, C + 1]),
        };
        for (const c of generation.cache) for (const name of [c.pastKey, c.pastValue]) feeds[name] = new ort.Tensor('float32', new Float32Array(B * c.heads * C * c.headDim).fill(0.01), [B, c.heads, C, c.headDim]);
        const times: number[] = [];
        for (let r = 0; r < 25; r++) {
          const t0 = performance.now();
          await decode.run(feeds);
          if (r >= 5) times.push((performance.now() - t0) / 1000);
        }
        const step = median(times);
        const mix = await sampleMix(mm.classes);
        const roofline = mm.classes.reduce((t, c, i) => t + c.count * median(mix[i]!), 0);
        stepRows.push([String(B), String(C), fmt(step * 1000, 3), fmt(mm.flops / 1e6, 1), fmt(mm.flops / step / 1e9, 2), fmt(roofline * 1000, 3), `${fmt(step / roofline, 1)}×`]);
        if (B === 16 && C === 512) notes.push(`matmul shapes of the step at batch 16, 512 slots: ${mm.classes.map((c) => `${c.count}× ${shapeText(c.a, c.b)}`).join(', ')}`);
      }
    }
    console.log(`\n${table(['batch', 'cache slots', 'step ms', 'MFLOP', 'GFLOP/s', 'MatMul-only ms', 'step / MatMul'], stepRows)}`);
    for (const n of notes) console.log(n);
    await pool.release();
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}

