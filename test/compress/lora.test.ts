/**
 * LoRA at export (src/ir/passes/loraMerge.ts, targets/peft.ts): the merged
 * weight against a hand computation; the merged inference graph of
 * examples/lora.pt-recipe's adapted model run by onnxruntime against the
 * unmerged one and the float64 reference (logits within 1e-5 of the largest);
 * the deploy's PEFT files: keys, [r, in] / [out, r] layout, config, and size
 * against the full model's weights.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { checkFiles, type ModuleInfo } from '../../src/check/index.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import type { Graph } from '../../src/ir/graph.js';
import { findAdapters, mergeAdapters, mergedWeight } from '../../src/ir/passes/loraMerge.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import { verifyGraph } from '../../src/ir/verify.js';
import { runOnce } from '../../src/runtime/ort.js';
import { Prng } from '../../src/runtime/prng.js';
import { decodeSafetensors, toFloat32 } from '../../src/runtime/safetensors.js';
import { planStage } from '../../src/stages/driver.js';
import { onnxTarget } from '../../targets/onnx/deploy.js';
import { emitModel } from '../../targets/onnx/emit.js';

let module: ModuleInfo;
let graph: Graph;
let weights: Map<string, Float32Array>;

beforeAll(() => {
  const checked = checkFiles(['examples/lora.pt-recipe']);
  module = checked.entryModules[0]!;
  graph = planStage(module, 'finetune', { steps: 1 }).graphs['inference']!;
  // Every weight random, the adapters too (lora_b starts at zero in training, which would make merging trivial).
  const prng = new Prng(4);
  weights = new Map(graph.inputs.filter((v) => v.inputName !== 'tokens').map((v) => [v.inputName!, Float32Array.from({ length: v.shape.reduce((a, b) => a * b, 1) }, () => 0.1 * prng.normal())]));
});

const TOKENS = makeTensor('i64', [1, 16], [1, 5, 6, 13, 7, 14, 8, 2, 0, 0, 0, 0, 0, 0, 0, 0]);

describe('merging LoRA adapters', () => {
  it('computes w + scale · a @ b', () => {
    // w [2, 3], a [2, 1], b [1, 3], scale 2.
    const merged = mergedWeight(Float32Array.of(1, 2, 3, 4, 5, 6), Float32Array.of(1, -1), Float32Array.of(0.5, 1, 2), 2, 2, 3);
    expect([...merged]).toEqual([2, 4, 7, 3, 3, 2]);
  });

  it("finds every adapted layer of examples/lora.pt-recipe's model, with scale alpha / rank", () => {
    const sites = findAdapters(graph);
    expect(sites.map((s) => s.layer)).toEqual([0, 1, 2, 3].flatMap((i) => [`adapted.blocks.${i}.attn.qkv`, `adapted.blocks.${i}.attn.proj`]));
    expect(new Set(sites.map((s) => s.scale))).toEqual(new Set([16 / 8]));
  });

  it('gives the adapted model its logits with one matmul per layer (onnxruntime and the float64 reference)', async () => {
    const merged = mergeAdapters(graph, weights);
    verifyGraph(merged.graph, 'merged');
    expect(merged.graph.inputs.some((v) => v.inputName!.includes('lora'))).toBe(false);
    const matmuls = (g: Graph): number => g.nodes.filter((n) => n.op === 'matmul').length;
    expect(matmuls(graph) - matmuls(merged.graph)).toBe(2 * 8);
    const tensors = (w: ReadonlyMap<string, Float32Array>, g: Graph): Map<string, Tensor> =>
      new Map(g.inputs.filter((v) => v.inputName !== 'tokens').map((v) => [v.inputName!, makeTensor('f32', v.shape, w.get(v.inputName!)!)]));
    const reference = evaluateGraph(graph, new Map([...tensors(weights, graph), ['tokens', TOKENS]])).get('logits')!.data;
    const unmerged = (await runOnce(emitModel(graph, { initializers: weights }).bytes, new Map([['tokens', TOKENS]]))).get('logits')!.data;
    const run = (await runOnce(emitModel(merged.graph, { initializers: merged.weights }).bytes, new Map([['tokens', TOKENS]]))).get('logits')!.data;
    const largest = Math.max(...Array.from(reference, Math.abs));
    for (let i = 0; i < reference.length; i++) {
      expect(Math.abs(run[i]! - reference[i]!)).toBeLessThan(1e-5 * largest);
      expect(Math.abs(run[i]! - unmerged[i]!)).toBeLessThan(1e-5 * largest);
    }
  });

  it('deploys the merged model with the adapters beside it in PEFT layout, under 5% of the weights', () => {
    const out = onnxTarget.deploy({ format: 'onnx', model: 'adapted', stage: 'finetune', precision: 'fp32', graphs: { inference: graph }, weights, module });
    expect(out.notDone).toBeNull();
    expect(out.files.map((f) => f.name)).toEqual(['model.onnx', 'adapter_model.safetensors', 'adapter_config.json']);
    expect(out.description).toContain('8 LoRA adapters merged');
    const config = JSON.parse(new TextDecoder().decode(out.files[2]!.bytes)) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['proj', 'qkv'], task_type: 'CAUSAL_LM' });
    const adapters = decodeSafetensors(out.files[1]!.bytes, 'adapter_model.safetensors');
    expect(adapters.metadata).toEqual({ format: 'pt' });
    expect(adapters.tensors.size).toBe(16);
    const a = adapters.tensors.get('base_model.model.blocks.2.attn.qkv.lora_A.weight')!;
    const b = adapters.tensors.get('base_model.model.blocks.2.attn.qkv.lora_B.weight')!;
    expect(a.shape).toEqual([8, 128]);
    expect(b.shape).toEqual([384, 8]);
    // Transposed: lora_A.weight[k][i] is our lora_a[i][k]; lora_B.weight[j][k] is our lora_b[k][j].
    const ours = weights.get('adapted.blocks.2.attn.qkv.lora_a')!;
    expect(toFloat32(a)[3 * 128 + 17]).toBe(ours[17 * 8 + 3]);
    expect(toFloat32(b)[200 * 8 + 5]).toBe(weights.get('adapted.blocks.2.attn.qkv.lora_b')![5 * 384 + 200]);
    const allWeights = [...weights.values()].reduce((n, w) => n + w.byteLength, 0);
    expect(out.files[1]!.bytes.length).toBeLessThan(0.05 * allWeights);
  });
});
