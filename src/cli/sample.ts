/**
 * `ptr sample FILE`: generate text from a stage's latest checkpoint, so a user
 * can see what the model learned. The inference graph has a fixed length T;
 * the context is the last T − 1 tokens, right-padded (the model is causal, so
 * padding after the last real token does not change its logits). Not T: a
 * next-token loss never trains the prediction made at the last position.
 */
import { optimize } from '../ir/passes/index.js';
import { latestCheckpointDir, loadCheckpoint } from '../runtime/checkpoint.js';
import { createSession, ort, type OrtTensor } from '../runtime/ort.js';
import { Prng } from '../runtime/prng.js';
import { runtimeTokenizer } from '../runtime/datasets.js';
import { emitModel } from '../../targets/onnx/emit.js';
import type { Io } from './io.js';
import { checkedModule, lowerStage } from './pipeline.js';
import { defaultRunDir } from './run.js';

export interface SampleCommandOptions {
  readonly stage?: string;
  readonly run?: string;
  readonly prompt?: string;
  readonly tokens?: number;
  readonly temperature?: number;
  readonly seed?: number;
}

export async function runSample(io: Io, file: string, options: SampleCommandOptions): Promise<number> {
  const module = checkedModule(io, file);
  if (!module) return 1;
  const plan = lowerStage(module, options.stage ?? null);
  const runDir = options.run ?? defaultRunDir(file);
  const dir = latestCheckpointDir(runDir, plan.stage);
  if (!dir) {
    io.err(`no checkpoint of stage ${plan.stage} in ${runDir}/checkpoints; run 'ptr run ${file}' first\n`);
    return 1;
  }
  const ck = loadCheckpoint(dir, plan.params.filter((p) => p.model === plan.model), null);
  const model = emitModel(optimize(plan.graphs.inference).graph, { initializers: ck.params });
  const session = await createSession(model.bytes);
  const tok = runtimeTokenizer(plan.dataset.tokenizer);
  const T = plan.inference.shape[1]!;
  const vocab = tok.vocab;
  const prompt = options.prompt ?? '\n';
  const ids = Array.from(tok.encode(prompt));
  const pad = tok.special('pad') ?? 0;
  const prng = new Prng(options.seed ?? 0);
  const temperature = options.temperature ?? 0.8;
  try {
    for (let n = 0; n < (options.tokens ?? 300); n++) {
      const context = ids.slice(-(T - 1));
      const window = new BigInt64Array(T).fill(BigInt(pad));
      context.forEach((id, i) => (window[i] = BigInt(id)));
      const out = await session.run({ [plan.inference.input]: new ort.Tensor('int64', window, [1, T]) });
      const logits = (out[plan.inference.output] as OrtTensor).data as Float32Array;
      const row = logits.subarray((context.length - 1) * vocab, context.length * vocab);
      const next = sampleFrom(row, temperature, prng, tok.specials.length ? vocab - tok.specials.length : vocab);
      ids.push(next);
    }
  } finally {
    await session.release();
  }
  // Decoded as one sequence, so word-level tokenizers put their spaces at the seam too.
  io.out(`${tok.decode(ids)}\n`);
  return 0;
}

/** Samples from softmax(logits / temperature) over the first `limit` ids (specials excluded). */
function sampleFrom(logits: Float32Array, temperature: number, prng: Prng, limit: number): number {
  let max = -Infinity;
  for (let i = 0; i < limit; i++) max = Math.max(max, logits[i]!);
  const p = new Float64Array(limit);
  let sum = 0;
  for (let i = 0; i < limit; i++) sum += p[i] = Math.exp((logits[i]! - max) / temperature);
  let u = prng.uniform() * sum;
  for (let i = 0; i < limit; i++) {
    u -= p[i]!;
    if (u <= 0) return i;
  }
  return limit - 1;
}
