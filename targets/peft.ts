/**
 * A LoRA model's adapters on their own, in PEFT's layout (what
 * `PeftModel.save_pretrained` writes and `PeftModel.from_pretrained` reads):
 *
 * - `adapter_model.safetensors`: per adapted layer `base_model.model.<layer>.lora_A.weight`
 *   [r, in] and `…lora_B.weight` [out, r] (torch.nn.Linear's [out, in] layout: our
 *   [in, r] and [r, out] matrices transposed), metadata `format: pt`;
 * - `adapter_config.json`: `peft_type: LORA`, `r`, `lora_alpha` (PEFT scales by
 *   lora_alpha / r, as we do), `target_modules` (the layer names' last part),
 *   `task_type: CAUSAL_LM`.
 *
 * Layer paths are the recipe model's (`blocks.0.attn.qkv`); a model imported from
 * Hugging Face keeps them under its own names, which a converter maps.
 */
import type { AdapterSite } from '../src/ir/passes/loraMerge.js';
import { encodeSafetensors, type StTensor } from '../src/runtime/safetensors.js';

/** The transpose of a row-major [rows, cols] matrix. */
function transposed(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = m[i * cols + j]!;
  return out;
}

/**
 * The two files of an adapters-only checkpoint. `model` is the recipe-level
 * model whose name prefixes the graph inputs (`adapted.`); `shapes` gives each
 * adapter input's [rows, cols].
 */
export function peftAdapterFiles(model: string, sites: readonly AdapterSite[], weights: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>): { name: string; bytes: Uint8Array }[] {
  const tensors = new Map<string, StTensor>();
  const ranks = new Set<number>();
  const alphas = new Set<number>();
  const targets = new Set<string>();
  for (const s of sites) {
    const [inp, r] = shapes.get(s.a) as [number, number];
    const out = shapes.get(s.b)![1]!;
    const path = s.layer.slice(model.length + 1);
    tensors.set(`base_model.model.${path}.lora_A.weight`, { dtype: 'F32', shape: [r, inp], data: transposed(weights.get(s.a)!, inp, r) });
    tensors.set(`base_model.model.${path}.lora_B.weight`, { dtype: 'F32', shape: [out, r], data: transposed(weights.get(s.b)!, r, out) });
    ranks.add(r);
    alphas.add(s.scale * r);
    targets.add(path.split('.').pop()!);
  }
  if (ranks.size !== 1 || alphas.size !== 1) throw new Error(`the adapters of ${model} differ in rank or alpha; PEFT's adapter_config.json holds one of each`);
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: [...ranks][0],
    lora_alpha: [...alphas][0],
    lora_dropout: 0.0,
    target_modules: [...targets].sort(),
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    base_model_name_or_path: null,
  };
  return [
    { name: 'adapter_model.safetensors', bytes: encodeSafetensors(tensors, { format: 'pt' }) },
    { name: 'adapter_config.json', bytes: new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`) },
  ];
}
