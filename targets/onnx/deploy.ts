/**
 * `deploy m @ s to onnx`: the stage's inference graph with its trained weights
 * as initializers, as `model.onnx` (plus `model.onnx.data` for weights past
 * the external-data threshold). `precision = int8` writes the int8 QDQ form
 * (src/ir/passes/qdq.ts) of a stage that quantized the model (a `quantize`
 * stage): int8 weights with their per-channel scales, activations through
 * QuantizeLinear → DequantizeLinear at their calibrated scales. A LoRA
 * model's adapters are merged into the weights they adapt (src/ir/passes/
 * loraMerge.ts), and written beside the model in PEFT's layout (targets/peft.ts).
 */
import { optimize } from '../../src/ir/passes/index.js';
import { mergeAdapters } from '../../src/ir/passes/loraMerge.js';
import { foldWeightQuantization } from '../../src/ir/passes/qdq.js';
import { peftAdapterFiles } from '../peft.js';
import type { DeployRequest, DeployTarget } from '../deploy.js';
import { emitModel, type InitializerData } from './emit.js';

export const onnxTarget: DeployTarget = {
  format: 'onnx',
  deploy(request: DeployRequest) {
    if (request.precision !== 'fp32' && request.precision !== 'int8') return { files: [], notDone: `precision ${request.precision} is not implemented yet (fp32 and int8 are)` };
    let graph = request.graphs['inference'];
    if (!graph) return { files: [], notDone: `stage ${request.stage} has no inference graph` };
    let weights: ReadonlyMap<string, Float32Array> = request.weights;
    const extra: { name: string; bytes: Uint8Array }[] = [];
    let merged = 0;
    if (graph.inputs.some((v) => v.inputName!.endsWith('.lora_a'))) {
      // A LoRA model is served merged (one matmul per layer); its adapters are written beside it in PEFT's layout.
      const shapes = new Map(graph.inputs.map((v) => [v.inputName!, v.shape]));
      const m = mergeAdapters(graph, weights);
      extra.push(...peftAdapterFiles(request.model, m.sites, weights, shapes));
      ({ graph, weights } = m);
      merged = m.sites.length;
    }
    let initializers: ReadonlyMap<string, InitializerData> = weights;
    if (request.precision === 'int8') {
      if (!graph.nodes.some((n) => n.op === 'fake_quant')) {
        return { files: [], notDone: `precision int8 exports a quantized model: deploy ${request.model} @ S, where S is a quantize stage (method = ptq) after ${request.stage}` };
      }
      const folded = foldWeightQuantization(graph, weights);
      graph = folded.graph;
      const used = new Set(graph.inputs.map((v) => v.inputName!));
      initializers = new Map<string, InitializerData>([...[...weights].filter(([k]) => used.has(k)), ...folded.initializers]);
    }
    const model = emitModel(optimize(graph).graph, { initializers, externalDataFile: 'model.onnx.data', docString: `${request.model} @ ${request.stage}${request.precision === 'int8' ? ', int8 QDQ' : ''}` });
    const files = [{ name: 'model.onnx', bytes: model.bytes }];
    if (model.externalData) files.push({ name: 'model.onnx.data', bytes: model.externalData });
    files.push(...extra);
    const tokens = graph.inputs.find((v) => v.inputName === 'tokens');
    const notes = [request.precision === 'int8' ? 'int8 weights and activations' : '', merged ? `${merged} LoRA adapters merged; adapter_model.safetensors and adapter_config.json beside it (PEFT)` : ''].filter((n) => n);
    return { files, notDone: null, ...(tokens ? { description: `input tokens: i64[${tokens.shape.join(', ')}], output logits${notes.length ? ` (${notes.join('; ')})` : ''}` } : {}) };
  },
};
