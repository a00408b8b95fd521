/**
 * `deploy m @ s to onnx`: the stage's inference graph with its trained weights
 * as initializers, as `model.onnx` (plus `model.onnx.data` for weights past
 * the external-data threshold).
 */
import { optimize } from '../../src/ir/passes/index.js';
import type { DeployRequest, DeployTarget } from '../deploy.js';
import { emitModel } from './emit.js';

export const onnxTarget: DeployTarget = {
  format: 'onnx',
  deploy(request: DeployRequest) {
    if (request.precision !== 'fp32') return { files: [], notDone: `precision ${request.precision} is not implemented yet (fp32 is)` };
    const graph = request.graphs['inference'];
    if (!graph) return { files: [], notDone: `stage ${request.stage} has no inference graph` };
    const model = emitModel(optimize(graph).graph, { initializers: request.weights, externalDataFile: 'model.onnx.data', docString: `${request.model} @ ${request.stage}` });
    const files = [{ name: 'model.onnx', bytes: model.bytes }];
    if (model.externalData) files.push({ name: 'model.onnx.data', bytes: model.externalData });
    const tokens = graph.inputs.find((v) => v.inputName === 'tokens');
    return { files, notDone: null, ...(tokens ? { description: `input tokens: i64[${tokens.shape.join(', ')}], output logits` } : {}) };
  },
};
