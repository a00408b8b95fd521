/**
 * Weights of Hugging Face checkpoints at run time: the initial value of each
 * parameter of a `pretrained("DIR")` model, read tensor by tensor (positioned
 * reads of its bytes, never the whole file) from DIR/model.safetensors or the
 * shards model.safetensors.index.json lists, converted from f32, f16 or bf16
 * to f32 and, for weights the file keeps [out, in], transposed to our
 * [in, out]. The checker already matched names, dtypes and shapes against
 * config.json; what can still go wrong here (the files changed or vanished
 * since) is the user's to fix, not a bug.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { readCheckpointContents, WEIGHT_DTYPES, type CheckpointEntry } from '../check/pretrained.js';
import type { Init } from '../ir/lower/types.js';
import { UserError } from './errors.js';
import { toFloat32, type StDType } from './safetensors.js';

/** A problem with a checkpoint folder's weights, found while reading them. */
export class PretrainedWeightsError extends UserError {}

type PretrainedInit = Extract<Init, { kind: 'pretrained' }>;

/** Reads initial values from checkpoint folders; each folder's headers are read once. */
export class PretrainedWeights {
  private readonly folders = new Map<string, ReadonlyMap<string, CheckpointEntry>>();

  /** The value of parameter `input` (our shape `shape`) from its tensor of the checkpoint. */
  read(init: PretrainedInit, input: string, shape: readonly number[]): Float32Array {
    if (init.tensor === null) {
      throw new PretrainedWeightsError(`${input} starts from the checkpoint in ${init.dir}, which has no weights (model.safetensors or model.safetensors.index.json)`);
    }
    const entry = this.folder(init.dir).get(init.tensor);
    if (!entry) throw new PretrainedWeightsError(`the checkpoint in ${init.dir} has no tensor "${init.tensor}" (for ${input}); did it change after ptr check?`);
    const fileShape = init.transposed ? [...shape].reverse() : [...shape];
    if (!WEIGHT_DTYPES.includes(entry.dtype) || entry.shape.length !== fileShape.length || entry.shape.some((d, i) => d !== fileShape[i])) {
      throw new PretrainedWeightsError(`tensor "${init.tensor}" in ${entry.file} is ${entry.dtype}[${entry.shape.join(', ')}], but ${input} needs ${WEIGHT_DTYPES.join(' or ')} [${fileShape.join(', ')}]`);
    }
    const values = toFloat32({ dtype: entry.dtype as StDType, shape: [...entry.shape], data: readData(entry) });
    return init.transposed ? transpose2d(values, fileShape[0]!, fileShape[1]!) : values;
  }

  private folder(dir: string): ReadonlyMap<string, CheckpointEntry> {
    let tensors = this.folders.get(dir);
    if (!tensors) {
      try {
        tensors = readCheckpointContents(dir).tensors ?? new Map<string, CheckpointEntry>();
      } catch (e) {
        throw new PretrainedWeightsError(`cannot read the weights in ${dir}: ${(e as Error).message}`, { cause: e });
      }
      this.folders.set(dir, tensors);
    }
    return tensors;
  }
}

/** A tensor's bytes as the typed array its dtype is carried in (F16 and BF16 as raw 16-bit patterns). */
function readData(entry: CheckpointEntry): Float32Array | Uint16Array {
  const buffer = new ArrayBuffer(entry.end - entry.begin);
  const bytes = new Uint8Array(buffer);
  let fd: number;
  try {
    fd = openSync(entry.file, 'r');
  } catch (e) {
    throw new PretrainedWeightsError(`cannot read ${entry.file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    for (let at = 0; at < bytes.length; ) {
      const n = readSync(fd, bytes, at, Math.min(bytes.length - at, 1 << 30), entry.begin + at);
      if (n === 0) throw new PretrainedWeightsError(`${entry.file} ends before the data of a tensor; did it change after ptr check?`);
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return entry.dtype === 'F32' ? new Float32Array(buffer) : new Uint16Array(buffer);
}

/** A row-major [rows, cols] matrix as its [cols, rows] transpose. */
export function transpose2d(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[row + c]!;
  }
  return out;
}
