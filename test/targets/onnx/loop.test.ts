/**
 * K steps in one run (the Loop model) compute exactly what K runs of the
 * train-step model compute: the same losses, learning rates and final
 * parameters and optimizer state.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { checkFiles } from '../../../src/check/index.js';
import { lowerTrainStage } from '../../../src/ir/lower/trainStage.js';
import { optimize } from '../../../src/ir/passes/index.js';
import { initialParams } from '../../../src/runtime/init.js';
import { createSession, ort, type OrtTensor } from '../../../src/runtime/ort.js';
import { emitModel } from '../../../targets/onnx/emit.js';
import { emitLoopModel } from '../../../targets/onnx/loop.js';

it('runs K train steps in one session.run with the results of K single steps', async () => {
  const result = checkFiles([join(__dirname, '..', '..', 'fixtures', 'train', 'llama.pt-recipe')]);
  const plan = lowerTrainStage(result.entryModules[0]!, null);
  const step = optimize(plan.graphs['train_step']!).graph;
  const single = await createSession(emitModel(step).bytes);
  const loop = await createSession(emitLoopModel(step, { feedback: plan.feedback, batchFields: [{ input: 'batch.tokens', field: 'tokens' }], scanOutputs: ['loss', 'grad_norm', 'lr'] }));

  const K = 3;
  const [B, T] = [4, 16];
  const tokens = Array.from({ length: K }, (_, k) => BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7 + k * 3) % 17)));
  const start: Record<string, OrtTensor> = {};
  for (const [name, data] of initialParams(plan.params, 5)) start[name] = new ort.Tensor('float32', data, [...plan.params.find((p) => p.input === name)!.shape]);
  for (const s of plan.state) start[s.input] = new ort.Tensor('float32', new Float32Array(s.shape.reduce((a, b) => a * b, 1)), [...s.shape]);
  const scalar = (v: number) => new ort.Tensor('int64', BigInt64Array.of(BigInt(v)), []);

  // K single steps, feeding outputs back.
  const feeds = { ...start };
  const losses: number[] = [];
  for (let k = 0; k < K; k++) {
    const out = await single.run({ ...feeds, 'batch.tokens': new ort.Tensor('int64', tokens[k]!, [B, T]), step: scalar(k + 1), seed: scalar(100 + k + 1) });
    losses.push((out['loss']!.data as Float32Array)[0]!);
    for (const [o, i] of Object.entries(plan.feedback)) feeds[i] = out[o]!;
  }

  // One run of the loop.
  const loopFeeds: Record<string, OrtTensor> = { steps: scalar(K), step0: scalar(1), seed_base: scalar(100) };
  for (const i of Object.values(plan.feedback)) loopFeeds[`init.${i}`] = start[i]!;
  const stacked = new BigInt64Array(K * B * T);
  tokens.forEach((t, k) => stacked.set(t, k * B * T));
  loopFeeds['batches.tokens'] = new ort.Tensor('int64', stacked, [K, B, T]);
  const out = await loop.run(loopFeeds);

  expect(Array.from(out['all.loss']!.data as Float32Array)).toEqual(losses);
  expect((out['all.lr']!.data as Float32Array).length).toBe(K);
  for (const i of Object.values(plan.feedback)) {
    expect(Array.from(out[`final.${i}`]!.data as Float32Array), i).toEqual(Array.from(feeds[i]!.data as Float32Array));
  }
  await single.release();
  await loop.release();
});
