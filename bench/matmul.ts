/**
 * The same-run baseline for training FLOP/s: onnxruntime's own MatMul. A
 * one-node IR graph (`a @ b`) is emitted with the compiler's ONNX emitter and
 * run in a session made by the runtime's `createSession` (same options as
 * training: CPU, graph optimisation 'all', default thread count) on random
 * inputs.
 */
import { performance } from 'node:perf_hooks';
import { GraphBuilder } from '../src/ir/builder.js';
import { createSession, ort, type OrtSession, type OrtTensor } from '../src/runtime/ort.js';
import { emitModel } from '../targets/onnx/emit.js';
import { matmulFlops, type MatmulClass } from './graph-stats.js';

function randomTensor(shape: readonly number[]): OrtTensor {
  const data = new Float32Array(shape.reduce((x, y) => x * y, 1));
  for (let i = 0; i < data.length; i++) data[i] = Math.random() - 0.5;
  return new ort.Tensor('float32', data, [...shape]);
}

/** One MatMul shape, ready to run: a session and its inputs. */
export class MatmulProbe {
  private constructor(
    readonly a: readonly number[],
    readonly b: readonly number[],
    readonly flops: number,
    private readonly session: OrtSession,
    private readonly feeds: Record<string, OrtTensor>,
  ) {}

  /** Builds the model and runs it 3 times (warm-up). */
  static async create(a: readonly number[], b: readonly number[]): Promise<MatmulProbe> {
    const g = new GraphBuilder('matmul_baseline');
    const out = g.matmul(g.input('a', 'f32', a), g.input('b', 'f32', b));
    g.output('y', out);
    const session = await createSession(emitModel(g.build()).bytes);
    const probe = new MatmulProbe(a, b, matmulFlops(a, out.shape), session, { a: randomTensor(a), b: randomTensor(b) });
    for (let i = 0; i < 3; i++) await probe.time();
    return probe;
  }

  /** Seconds for one MatMul. */
  async time(): Promise<number> {
    const t0 = performance.now();
    await this.session.run(this.feeds);
    return (performance.now() - t0) / 1000;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Samples of one MatMul shape: a fresh session (released afterwards, so no
 * idle ORT thread pool is left behind to compete with later runs), 3 warm-up
 * runs, then at least `minRuns` runs and `minSeconds` of them; seconds per run.
 */
export async function sampleMatmul(a: readonly number[], b: readonly number[], minRuns = 10, minSeconds = 0.25): Promise<number[]> {
  const probe = await MatmulProbe.create(a, b);
  try {
    const samples: number[] = [];
    const began = performance.now();
    while (samples.length < minRuns || performance.now() - began < minSeconds * 1000) samples.push(await probe.time());
    return samples;
  } finally {
    await probe.release();
  }
}

/** Samples of every distinct matmul shape of a graph, in the order of `classes`. */
export async function sampleMix(classes: readonly MatmulClass[]): Promise<number[][]> {
  const out: number[][] = [];
  for (const c of classes) out.push(await sampleMatmul(c.a, c.b, 5, 0.1));
  return out;
}
