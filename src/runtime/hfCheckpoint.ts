/**
 * Weights of Hugging Face checkpoints at run time: the initial value of each
 * parameter of a `pretrained("DIR")` model, read tensor by tensor (never a whole
 * file: runtime/safetensors.ts's openSafetensorsIn) from DIR/model.safetensors or
 * the shards model.safetensors.index.json lists, converted from f32, f16 or bf16
 * to f32 and, for weights the file keeps [out, in], transposed to our
 * [in, out]. The checker already matched names, dtypes and shapes against
 * config.json; what can still go wrong here (the files changed or vanished
 * since) is the user's to fix, not a bug.
 */
import { WEIGHT_DTYPES } from '../check/pretrained.js';
import type { Init } from '../ir/lower/types.js';
import { UserError } from './errors.js';
import { openSafetensorsIn, toFloat32, type SafetensorsReader } from './safetensors.js';

/** A problem with a checkpoint folder's weights, found while reading them. */
export class PretrainedWeightsError extends UserError {}

type PretrainedInit = Extract<Init, { kind: 'pretrained' }>;

/** Reads initial values from checkpoint folders. */
export class PretrainedWeights {
  /** The value of parameter `input` (our shape `shape`) from its tensor of the checkpoint. */
  read(init: PretrainedInit, input: string, shape: readonly number[]): Float32Array {
    if (init.tensor === null) {
      throw new PretrainedWeightsError(`${input} starts from the checkpoint in ${init.dir}, which has no weights (model.safetensors or model.safetensors.index.json)`);
    }
    // Opened per tensor (only headers are read), so no file stays open between reads.
    const reader = this.open(init.dir);
    try {
      const info = reader.tensors.get(init.tensor);
      if (!info) throw new PretrainedWeightsError(`the checkpoint in ${init.dir} has no tensor "${init.tensor}" (for ${input}); did it change after ptr check?`);
      const fileShape = init.transposed ? [...shape].reverse() : [...shape];
      if (!WEIGHT_DTYPES.includes(info.dtype) || info.shape.length !== fileShape.length || info.shape.some((d, i) => d !== fileShape[i])) {
        throw new PretrainedWeightsError(`tensor "${init.tensor}" in ${reader.fileOf(init.tensor)} is ${info.dtype}[${info.shape.join(', ')}], but ${input} needs ${WEIGHT_DTYPES.join(' or ')} [${fileShape.join(', ')}]`);
      }
      const values = toFloat32(reader.read(init.tensor));
      return init.transposed ? transpose2d(values, fileShape[0]!, fileShape[1]!) : values;
    } finally {
      reader.close();
    }
  }

  private open(dir: string): SafetensorsReader {
    try {
      return openSafetensorsIn(dir, 'model');
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new PretrainedWeightsError(`cannot read the weights in ${dir}: ${(e as Error).message}`, { cause: e });
    }
  }
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
