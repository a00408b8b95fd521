/**
 * `deploy m @ s to hf { out = "…" }`: the trained model as a Hugging Face
 * checkpoint folder — config.json, generation_config.json, model.safetensors
 * (or shards and model.safetensors.index.json above the shard size, as
 * save_pretrained writes them) with the architecture's own tensor names and
 * layouts, and the tokenizer files of the folder the model was read from —
 * a folder AutoModelForCausalLM.from_pretrained loads. The tensor table is the
 * one `pretrained(...)` reads with (check/pretrainedArchitectures.ts), so
 * import → export gives back every tensor bit for bit. A LoRA model is written
 * with each adapter merged into the weight it adapts (w + alpha/r · a @ b).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { architectureOfBlock, type TensorRule } from '../../src/check/pretrainedArchitectures.js';
import { hfModelSource } from '../../src/ir/lower/hfModelSource.js';
import { mergeAdapters } from '../../src/ir/passes/loraMerge.js';
import { encodeSafetensors, fromFloat32, type StDType, type StTensor } from '../../src/runtime/safetensors.js';
import type { DeployOutput, DeployRequest, DeployTarget } from '../deploy.js';

/** transformers' default `max_shard_size` ("5GB"). */
export const HF_SHARD_BYTES = 5_000_000_000;

/** Files of a checkpoint folder that describe its tokenizer and generation defaults, carried over when present. */
const CARRIED_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'generation_config.json'];

const PRECISIONS: Readonly<Record<string, { readonly dtype: StDType; readonly torch: string }>> = {
  fp32: { dtype: 'F32', torch: 'float32' },
  fp16: { dtype: 'F16', torch: 'float16' },
  bf16: { dtype: 'BF16', torch: 'bfloat16' },
};

export const hfTarget: DeployTarget = {
  format: 'hf',
  deploy: (request) => deployHf(request),
};

/** The files of the hf folder; `maxShardBytes` splits model.safetensors as save_pretrained would. */
export function deployHf(request: DeployRequest, maxShardBytes = HF_SHARD_BYTES): DeployOutput {
  const precision = PRECISIONS[request.precision];
  if (!precision) return { files: [], notDone: `precision ${request.precision} is not written to hf (fp32, fp16 and bf16 are)` };
  if (!request.module) return { files: [], notDone: 'the hf target needs the recipe module to describe the model' };
  const source = hfModelSource(request.module, request.model);
  if (typeof source === 'string') return { files: [], notDone: source };
  const arch = architectureOfBlock(source.choice.block)!;
  let weights = request.weights;
  if (source.adapted) {
    const graph = request.graphs['inference'];
    if (!graph) return { files: [], notDone: `stage ${request.stage} has no inference graph to find ${request.model}'s LoRA adapters in` };
    weights = mergeAdapters(graph, request.weights).weights;
  }
  const tensors = new Map<string, StTensor>();
  for (const rule of arch.tensors(source.choice)) {
    const name = arch.exportPrefix + rule.hf;
    tensors.set(name, fromFloat32(name, fileLayout(request, weights, rule), rule.shape, precision.dtype));
  }
  const config: Record<string, unknown> = { ...(source.pretrained?.config ?? arch.config(source.choice)), torch_dtype: precision.torch };
  const files: { name: string; bytes: Uint8Array }[] = [{ name: 'config.json', bytes: json(config) }];
  files.push(...weightFiles(tensors, maxShardBytes));
  const carried: string[] = [];
  for (const f of CARRIED_FILES) {
    const path = source.pretrained ? join(source.pretrained.dir, f) : null;
    if (path && existsSync(path)) {
      files.push({ name: f, bytes: readFileSync(path) });
      carried.push(f);
    }
  }
  if (!carried.includes('generation_config.json')) files.push({ name: 'generation_config.json', bytes: json(generationConfig(config)) });
  const what = `${source.choice.block} as ${String(config['model_type'])}${source.adapted ? ' (LoRA adapters merged)' : ''}, ${tensors.size} tensors in ${precision.torch}`;
  return { files, notDone: null, description: `${what}${carried.length ? `; ${carried.join(', ')} from ${source.pretrained!.dir}` : ''}` };
}

/** A parameter's trained values in the layout the file keeps (transposed back to [out, in] where the architecture says so). */
function fileLayout(request: DeployRequest, weights: ReadonlyMap<string, Float32Array>, rule: TensorRule): Float32Array {
  const input = `${request.model}.${rule.param}`;
  const values = weights.get(input);
  if (!values) throw new Error(`hf: the checkpoint of ${request.model} @ ${request.stage} has no ${input}`);
  if (!rule.transposed) return values;
  // Ours is [in, out] = [shape[1], shape[0]]; the file keeps [out, in].
  const [outDim, inDim] = rule.shape as [number, number];
  const out = new Float32Array(values.length);
  for (let i = 0; i < inDim; i++) for (let o = 0; o < outDim; o++) out[o * inDim + i] = values[i * outDim + o]!;
  return out;
}

/** model.safetensors, or shards in name order and their index when the tensors exceed `maxShardBytes`. */
function weightFiles(tensors: ReadonlyMap<string, StTensor>, maxShardBytes: number): { name: string; bytes: Uint8Array }[] {
  const metadata = { format: 'pt' };
  const sorted = [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const total = sorted.reduce((n, [, t]) => n + t.data.byteLength, 0);
  if (total <= maxShardBytes) return [{ name: 'model.safetensors', bytes: encodeSafetensors(tensors, metadata) }];
  // A new shard when the next tensor would overflow the current one, as save_pretrained splits.
  const shards: [string, StTensor][][] = [[]];
  let filled = 0;
  for (const entry of sorted) {
    if (filled > 0 && filled + entry[1].data.byteLength > maxShardBytes) {
      shards.push([]);
      filled = 0;
    }
    shards[shards.length - 1]!.push(entry);
    filled += entry[1].data.byteLength;
  }
  const shardName = (i: number): string => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
  const weightMap: Record<string, string> = {};
  const files = shards.map((shard, i) => {
    for (const [name] of shard) weightMap[name] = shardName(i);
    return { name: shardName(i), bytes: encodeSafetensors(new Map(shard), metadata) };
  });
  files.push({ name: 'model.safetensors.index.json', bytes: json({ metadata: { total_size: total }, weight_map: weightMap }) });
  return files;
}

/** The generation defaults transformers derives from a config (`_from_model_config`). */
function generationConfig(config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { _from_model_config: true };
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id']) if (config[key] !== undefined && config[key] !== null) out[key] = config[key];
  return out;
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(sortKeys(value), null, 2)}\n`);
}

/** Objects with their keys sorted, so the same model gives the same bytes. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
}
