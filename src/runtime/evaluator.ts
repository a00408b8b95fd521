/**
 * Periodic evaluation: a stage's eval graph over every full validation batch,
 * with the current weights from the parameter store; the mean of its `loss`.
 */
import { join } from 'node:path';
import type { Manifest } from '../../targets/onnx/compile.js';
import { createSession, type Device, type OrtSession, type OrtTensor } from './ort.js';
import type { ParamStore } from './paramStore.js';
import type { Batch } from './stepRunner.js';
import { DataError } from './datasets.js';

export class Evaluator {
  private constructor(
    private readonly session: OrtSession,
    private readonly inputs: readonly string[],
    private readonly batches: readonly Batch[],
  ) {}

  /** The evaluator of `graph`, or null when the plan has none. Validation batches are read once, here. */
  static async create(manifest: Manifest, graph: string, batches: () => Batch[], options: { modelDir: string; device: Device; threads?: number }): Promise<Evaluator | null> {
    const entry = manifest.graphs[graph];
    if (!entry) return null;
    const val = batches();
    const data = manifest.data[graph];
    if (val.length === 0) throw new DataError(`dataset ${data?.spec.name ?? '?'}: its validation split holds less than one batch; 'eval every' has nothing to evaluate`);
    const session = await createSession(join(options.modelDir, entry.file), options.device, options.threads);
    return new Evaluator(session, entry.inputs.map((i) => i.name), val);
  }

  /** The mean loss over the validation batches. */
  async evaluate(store: ParamStore): Promise<number> {
    let sum = 0;
    for (const batch of this.batches) {
      const feeds: Record<string, OrtTensor> = {};
      for (const name of this.inputs) feeds[name] = batch[name] ?? store.get(name);
      const out = await this.session.run(feeds);
      sum += Number((out['loss']!.data as Float32Array)[0]);
    }
    return sum / this.batches.length;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
