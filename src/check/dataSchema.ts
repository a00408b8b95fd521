/**
 * The one definition of dataset formats and their batches: which JSONL keys a
 * row needs, which fields a batch has (name, dtype, shape in terms of B, T
 * and P), and the graph input each field becomes. The checker types `batch.X`
 * from it, lowering makes graph inputs from it, and the runtime names the
 * tensors it feeds from it — so the three cannot drift.
 */

export type DatasetFormat = 'text' | 'prompt_completion' | 'preference' | 'chat' | 'prompts';

/**
 * Batch dimensions: `B` examples, `T` tokens per sequence (the dataset's
 * `block` or `max_len`), `P` tokens per prompt.
 */
export type BatchDim = 'B' | 'T' | 'P';

export interface BatchFieldSpec {
  readonly name: string;
  /** `str` fields are host-side only (rewards and verifiers read them); they are never graph inputs. */
  readonly dtype: 'i64' | 'f32' | 'str';
  readonly dims: readonly BatchDim[];
  readonly doc: string;
}

export interface DatasetFormatSpec {
  /** Keys every JSONL row must have (text corpora have none). */
  readonly requiredKeys: readonly string[];
  readonly fields: readonly BatchFieldSpec[];
  /** Whether a train stage can read it (a prompts-only view has no targets). */
  readonly trainable: boolean;
}

const tokens = (doc: string): BatchFieldSpec => ({ name: 'tokens', dtype: 'i64', dims: ['B', 'T'], doc });
const mask = (name: string, doc: string): BatchFieldSpec => ({ name, dtype: 'f32', dims: ['B', 'T'], doc });

export const DATASET_FORMATS: Readonly<Record<DatasetFormat, DatasetFormatSpec>> = {
  text: {
    requiredKeys: [],
    fields: [tokens('consecutive windows of the corpus')],
    trainable: true,
  },
  prompt_completion: {
    requiredKeys: ['prompt', 'completion'],
    fields: [tokens('bos + prompt + completion + eos, right-padded'), mask('loss_mask', '1 on the completion and its eos')],
    trainable: true,
  },
  preference: {
    requiredKeys: ['prompt', 'chosen', 'rejected'],
    fields: [
      { name: 'chosen', dtype: 'i64', dims: ['B', 'T'], doc: 'prompt + chosen response' },
      { name: 'rejected', dtype: 'i64', dims: ['B', 'T'], doc: 'prompt + rejected response' },
      mask('chosen_mask', '1 on the chosen response'),
      mask('rejected_mask', '1 on the rejected response'),
    ],
    trainable: true,
  },
  chat: {
    requiredKeys: ['messages'],
    fields: [tokens('the rendered conversation, right-padded'), mask('loss_mask', '1 on assistant messages and what closes them')],
    trainable: true,
  },
  prompts: {
    requiredKeys: [],
    fields: [
      { name: 'prompt', dtype: 'i64', dims: ['B', 'P'], doc: 'bos + prompt tokens' },
      { name: 'prompt_text', dtype: 'str', dims: ['B'], doc: 'the prompt as text' },
      { name: 'answer', dtype: 'str', dims: ['B'], doc: 'the reference answer (the completion), for verifiers' },
    ],
    trainable: false,
  },
};

export function isDatasetFormat(name: string): name is DatasetFormat {
  return Object.hasOwn(DATASET_FORMATS, name);
}

/** The fields that become graph inputs (tensors), in table order. */
export function graphFields(format: DatasetFormat): readonly BatchFieldSpec[] {
  return DATASET_FORMATS[format].fields.filter((f) => f.dtype !== 'str');
}

/** A field's concrete shape. */
export function fieldShape(field: BatchFieldSpec, sizes: Readonly<Record<BatchDim, number>>): number[] {
  return field.dims.map((d) => sizes[d]);
}

/** The graph input that carries a batch field in a train-step or eval graph. */
export function batchInputName(field: string): string {
  return `batch.${field}`;
}

/** The input of the K-step Loop model that carries K batches of a field stacked on a leading axis. */
export function stackedBatchInputName(field: string): string {
  return `batches.${field}`;
}
