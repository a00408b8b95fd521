/**
 * Checkpoints whose weights are stored in F16, BF16 or F64 load into the f32
 * parameters (half precision exactly, as its decoded value); integer weights
 * are refused with a message naming the file and the tensor.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PlannedParam } from '../../src/ir/lower/plan.js';
import { CheckpointError, loadCheckpoint, saveCheckpoint } from '../../src/runtime/checkpoint.js';
import { fromFloat32, toFloat32, writeSafetensors, type StDType } from '../../src/runtime/safetensors.js';

const param: PlannedParam = { input: 'm.w', model: 'm', name: 'w', dtype: 'f32', shape: [2, 3], init: { kind: 'zeros' }, trainable: true, decay: true };
const values = Float32Array.of(0.1, -2.5, 3.140625, 1e-3, 65504, -0);

/** A checkpoint folder whose model.safetensors holds `w` as `dtype`. */
function checkpointAs(dtype: StDType): string {
  const runDir = mkdtempSync(join(tmpdir(), 'ptr-ck-'));
  const trainer = { stage: 's', step: 1, steps: 1, seed: 0, rng: { scheme: 'seed-and-step' as const, seed: 0 }, complete: true };
  const dir = saveCheckpoint(runDir, trainer, [param], new Map([['m.w', values]]), [], new Map());
  writeSafetensors(join(dir, 'model.safetensors'), { w: fromFloat32('w', values, [2, 3], dtype) });
  return dir;
}

describe('checkpoints of other float widths', () => {
  it.each(['F16', 'BF16', 'F64'] as const)('loads %s weights as their decoded f32 values', (dtype) => {
    const loaded = loadCheckpoint(checkpointAs(dtype), [param], null).params.get('m.w')!;
    const expected = toFloat32(fromFloat32('w', values, [2, 3], dtype));
    expect(Array.from(loaded)).toEqual(Array.from(expected));
    // Half precision keeps 11 (f16) or 8 (bf16) significant bits.
    const tolerance = dtype === 'F16' ? 2 ** -11 : dtype === 'BF16' ? 2 ** -8 : 1e-7;
    values.forEach((v, i) => expect(Math.abs(loaded[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * tolerance));
  });

  it('refuses integer weights, naming the file and the tensor', () => {
    const base = checkpointAs('F32');
    writeSafetensors(join(base, 'model.safetensors'), { w: fromFloat32('w', [0, 1, 2, 3, 4, 5], [2, 3], 'I32') });
    expect(() => loadCheckpoint(base, [param], null)).toThrow(CheckpointError);
    expect(() => loadCheckpoint(base, [param], null)).toThrow(/model\.safetensors: 'w' is I32, the recipe needs floating-point weights/);
  });
});
