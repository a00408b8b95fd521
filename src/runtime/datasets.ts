/**
 * One view over the data a train stage reads, whatever its format: batch
 * `step` as ORT tensors named like the train graph's batch inputs
 * (`batch.tokens`, `batch.loss_mask`, …), and the fixed validation batches.
 */
import type { DatasetSpec } from '../ir/lower/values.js';
import { batchInputName, graphFields } from '../check/dataSchema.js';
import { readConfigSpecials } from '../check/hfTokenizer.js';
import { JsonlDataset, TextCorpus, type JsonlFormat } from './data.js';
import { ort, type OrtTensor } from './ort.js';
import { bytes, chars, hf, tokenizeBoundMs, withTimeBound, type Tokenizer } from './tokenizer.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from './errors.js';

export interface StageData {
  /** Examples in one epoch of the training split. */
  readonly examplesPerEpoch: number;
  trainBatch(step: number, batchSize: number): Record<string, OrtTensor>;
  /** Full validation batches only (the graphs have a fixed batch size). */
  valBatches(batchSize: number): Record<string, OrtTensor>[];
}

export function runtimeTokenizer(spec: DatasetSpec['tokenizer']): Tokenizer {
  if (spec.kind === 'chars') return chars(spec.alphabet!, spec.specials);
  if (spec.kind === 'bytes') return bytes(spec.specials);
  const json: unknown = JSON.parse(readFileSync(spec.path!, 'utf8'));
  // The model's own special tokens, as the checker read them (tokenizer_config.json beside the file).
  const own = new Map([...readConfigSpecials(spec.path!, json).ids].map(([name, t]) => [name, t.id]));
  return hf(json, spec.specials, spec.path!, own);
}

/** Data that cannot be read or batched; the message names the file (and line) and what was expected. */
export class DataError extends UserError {}

/**
 * Opens a dataset for batching. Data a generate stage writes without an `out` path
 * lives in the run folder (`<runDir>/<stage>/output.jsonl`), so it needs `runDir`.
 */
export function openStageData(ds: DatasetSpec, seed: number, runDir?: string): StageData {
  const spec = ds.path === '' && ds.producedBy ? { ...ds, path: generatedDataPath(ds.producedBy, runDir) } : ds;
  if (spec.producedBy && !existsSync(spec.path)) {
    throw new DataError(`dataset ${ds.name}: stage ${spec.producedBy} has not written it yet (${spec.path}); run that stage first`);
  }
  try {
    // One time bound for tokenizing the whole file (not one per row): a tokenizer.json
    // whose regex backtracks catastrophically fails here instead of hanging the run.
    if (spec.tokenizer.kind !== 'hf') return open(spec, seed);
    const chars = existsSync(spec.path) ? statSync(spec.path).size : 0;
    const ms = tokenizeBoundMs(chars);
    return withTimeBound(ms, () => `${spec.tokenizer.path}: tokenizing ${spec.path} (${chars.toLocaleString('en-US')} bytes) took longer than ${(ms / 1000).toFixed(1)} s; a regex in the tokenizer file may backtrack catastrophically`, () => open(spec, seed));
  } catch (e) {
    throw new DataError(`dataset ${ds.name}: ${(e as Error).message}`);
  }
}

/** Where a generate stage without `out` writes its dataset. */
export function generatedDataPath(stage: string, runDir: string | undefined): string {
  if (runDir === undefined) throw new DataError(`the data stage ${stage} generates is read from a run folder; this command has none`);
  return join(runDir, stage, 'output.jsonl');
}

function open(ds: DatasetSpec, seed: number): StageData {
  const tok = runtimeTokenizer(ds.tokenizer);
  if (ds.format === 'text') {
    const corpus = TextCorpus.fromFile(ds.path, tok, { block: ds.seqLen!, split: ds.split, seed });
    const T = corpus.block;
    const tokens = (data: BigInt64Array, rows: number): Record<string, OrtTensor> => ({ [batchInputName('tokens')]: new ort.Tensor('int64', data, [rows, T]) });
    return {
      examplesPerEpoch: corpus.windowsPerEpoch,
      trainBatch: (step, B) => tokens(corpus.trainBatch(step, B), B),
      valBatches: (B) => (corpus.valTokens === 0 ? [] : corpus.valBatches(B).filter((b) => b.length === B * T).map((b) => tokens(b, B))),
    };
  }
  if (ds.format === 'prompts') throw new Error(`dataset ${ds.name}: a prompts-only view cannot be trained on`);
  const data = JsonlDataset.fromFile(ds.path, ds.format as JsonlFormat, tok, { ...(ds.seqLen ? { maxLen: ds.seqLen } : {}), split: ds.split, seed, ...(ds.chatTemplate ? { chatTemplate: ds.chatTemplate } : {}) });
  const convert = (batch: ReturnType<JsonlDataset['trainBatch']>): Record<string, OrtTensor> => {
    const out: Record<string, OrtTensor> = {};
    for (const field of graphFields(ds.format)) {
      const f = batch.get(field.name);
      if (!f) throw new Error(`a ${ds.format} batch has no '${field.name}' (a bug in pt-recipe's data loader)`);
      out[batchInputName(field.name)] = f.dtype === 'i64' ? new ort.Tensor('int64', f.data as BigInt64Array, f.shape) : new ort.Tensor('float32', f.data as Float32Array, f.shape);
    }
    return out;
  };
  return {
    examplesPerEpoch: data.trainRows,
    trainBatch: (step, B) => convert(data.trainBatch(step, B)),
    valBatches: (B) => (data.valRows === 0 ? [] : data.valBatches(B).filter((b) => [...b.values()][0]!.shape[0] === B).map(convert)),
  };
}
