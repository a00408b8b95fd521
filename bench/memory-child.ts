/**
 * Child process of the memory benchmark (bench/memory.ts); prints one JSON
 * line with its peak RSS. Modes:
 *
 *   node dist/bench/memory-child.js loaded               # onnxruntime-node (and the trainer) loaded, nothing run
 *   node dist/bench/memory-child.js idle                 # the same, plus one tiny session created, run and released
 *   node dist/bench/memory-child.js train MODEL_DIR RUN_DIR STEPS
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from '../targets/onnx/compile.js';
import type { TrainSettings } from '../src/ir/lower/trainStage.js';
import { GraphBuilder } from '../src/ir/builder.js';
import { createSession, ort } from '../src/runtime/ort.js';
import { train } from '../src/runtime/trainer.js';
import { emitModel } from '../targets/onnx/emit.js';

async function main(): Promise<void> {
  const [mode, modelDir, runDir, steps] = process.argv.slice(2);
  let detail: Record<string, unknown> = {};
  if (mode === 'idle') {
    const g = new GraphBuilder('tiny');
    g.output('y', g.add(g.input('a', 'f32', [4]), g.input('b', 'f32', [4])));
    const session = await createSession(emitModel(g.build()).bytes);
    const t = new ort.Tensor('float32', new Float32Array(4), [4]);
    await session.run({ a: t, b: t });
    await session.release();
  } else if (mode === 'train') {
    const manifest = JSON.parse(readFileSync(join(modelDir!, 'manifest.json'), 'utf8')) as Manifest<TrainSettings>;
    const r = await train(manifest, { modelDir: modelDir!, runDir: runDir!, progress: null, stopAfter: Number(steps), checkpointEvery: 1e9 });
    detail = { steps: r.losses.length, loss: r.losses[r.losses.length - 1] };
  } else if (mode !== 'loaded') {
    throw new Error(`unknown mode ${mode}`);
  }
  const usage = process.resourceUsage();
  process.stdout.write(`${JSON.stringify({ mode, maxRssKiB: usage.maxRSS, rssNowBytes: process.memoryUsage().rss, ...detail })}\n`);
}

await main();
