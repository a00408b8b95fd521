/**
 * Initial parameter values from the manifest's initialisers, drawn from one
 * PRNG seeded by the stage seed in parameter order — the same recipe and seed
 * give the same weights on every machine.
 */
import type { PlannedParam } from '../ir/lower/plan.js';
import { Prng } from './prng.js';
import { sizeOf } from '../ir/tensor.js';
import { PretrainedWeights } from './hfCheckpoint.js';

/** Reads a tensor of a stage's checkpoint: (model, stage, name, expected shape). */
export type CheckpointTensors = (model: string, stage: string, name: string, shape: readonly number[]) => Float32Array;

export function initialParams(params: readonly PlannedParam[], seed: number, fromCheckpoint?: CheckpointTensors): Map<string, Float32Array> {
  const prng = new Prng(seed);
  const out = new Map<string, Float32Array>();
  const pretrained = new PretrainedWeights();
  for (const p of params) {
    const n = sizeOf(p.shape);
    const data = new Float32Array(n);
    const init = p.init;
    switch (init.kind) {
      case 'normal':
        for (let i = 0; i < n; i++) data[i] = init.std * prng.normal();
        break;
      case 'uniform':
        for (let i = 0; i < n; i++) data[i] = init.bound * (2 * prng.uniform() - 1);
        break;
      case 'ones':
        data.fill(1);
        break;
      case 'zeros':
        break;
      case 'checkpoint':
        if (!fromCheckpoint) throw new Error(`${p.input} starts from stage ${init.stage}'s checkpoint; no run folder to read it from`);
        data.set(fromCheckpoint(init.model, init.stage, init.name, p.shape));
        break;
      case 'copy': {
        const src = out.get(init.from);
        if (!src) throw new Error(`${p.input} starts from ${init.from}, which needs that model's checkpoint; run its stage first`);
        data.set(src);
        break;
      }
      case 'pretrained':
        data.set(pretrained.read(init, p.input, p.shape));
        break;
    }
    out.set(p.input, data);
  }
  return out;
}
