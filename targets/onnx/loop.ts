/**
 * K training steps in one `session.run`: the train-step graph as the body of an
 * ONNX `Loop`, with parameters and optimizer state as loop-carried values.
 * Parameters then cross between the host and the device once per K steps, not
 * every step — what makes the CUDA provider worth using from Node, which
 * cannot keep tensors on the device between runs.
 *
 * Model inputs: `init.X` for each carried value X (the feedback map's inputs),
 * the other train-step inputs (frozen parameters) by their own names,
 * `steps` (i64: how many steps this run does), `step0` (the number of the
 * first), `seed_base` (the per-step dropout seed is seed_base + step), and each
 * batch field `batches.F` of shape [K, ...] (one batch per step).
 * Outputs: `final.X` for each carried value, and `all.loss`, `all.grad_norm`,
 * `all.lr` of shape [K]. (A loop body's names must not repeat its model's.)
 */
import type { Graph } from '../../src/ir/graph.js';
import type { DType } from '../../src/ir/tensor.js';
import { IR_VERSION, OPSET, elemType, onnx } from './proto.js';
import { lowerNodes } from './emit.js';
import { stackedBatchInputName } from '../../src/check/dataSchema.js';

export interface LoopSpec {
  /** Train-step output → the input it feeds next step (the carried values). */
  readonly feedback: Readonly<Record<string, string>>;
  /** Train-step inputs that are batch fields (`batch.tokens`, …), with their field names in the data schema. */
  readonly batchFields: readonly { readonly input: string; readonly field: string }[];
  /** Per-step scalar outputs collected over the steps. */
  readonly scanOutputs: readonly string[];
}

type ValueInfo = InstanceType<typeof onnx.ValueInfoProto>;

function info(name: string, dtype: DType, dims: readonly (number | string)[]): ValueInfo {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: elemType(dtype), shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
}

export function emitLoopModel(step: Graph, spec: LoopSpec, producerVersion = ''): Uint8Array {
  const carried = Object.entries(spec.feedback).map(([output, input]) => ({ output, input, value: step.inputs.find((v) => v.inputName === input)! }));
  const carriedNames = new Set(carried.map((c) => c.input));
  const fieldOf = new Map(spec.batchFields.map((f) => [f.input, f.field]));
  const batch = new Set(fieldOf.keys());
  const body = lowerNodes(step, 'body.');

  // Body prologue: this iteration's step number, dropout seed and batch.
  const prologue = [
    onnx.NodeProto.create({ opType: 'Add', input: ['step0', 'loop.iter'], output: ['step'], name: 'body.step' }),
    onnx.NodeProto.create({ opType: 'Add', input: ['seed_base', 'step'], output: ['seed'], name: 'body.seed' }),
    onnx.NodeProto.create({ opType: 'Identity', input: ['loop.cond'], output: ['loop.cond_out'], name: 'body.cond' }),
    ...[...batch].map((name) =>
      onnx.NodeProto.create({ opType: 'Gather', input: [stackedBatchInputName(fieldOf.get(name)!), 'loop.iter'], output: [name], name: `body.${name}`, attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] }),
    ),
  ];
  const outputOf = (name: string) => step.outputs.find((o) => o.name === name)!.value;
  const bodyGraph = onnx.GraphProto.create({
    name: 'train_step_body',
    node: [...prologue, ...body.nodes],
    input: [info('loop.iter', 'i64', []), info('loop.cond', 'bool', []), ...carried.map((c) => info(c.input, c.value.dtype, c.value.shape))],
    output: [
      info('loop.cond_out', 'bool', []),
      ...carried.map((c) => info(c.output, outputOf(c.output).dtype, outputOf(c.output).shape)),
      ...spec.scanOutputs.map((name) => info(name, outputOf(name).dtype, outputOf(name).shape)),
    ],
  });

  const outerInputs: ValueInfo[] = [
    info('steps', 'i64', []),
    info('step0', 'i64', []),
    info('seed_base', 'i64', []),
    ...carried.map((c) => info(`init.${c.input}`, c.value.dtype, c.value.shape)),
    ...step.inputs
      .filter((v) => !carriedNames.has(v.inputName!) && !batch.has(v.inputName!) && v.inputName !== 'step' && v.inputName !== 'seed')
      .map((v) => info(v.inputName!, v.dtype, v.shape)),
    ...step.inputs.filter((v) => batch.has(v.inputName!)).map((v) => info(stackedBatchInputName(fieldOf.get(v.inputName!)!), v.dtype, ['K', ...v.shape])),
  ];
  const loop = onnx.NodeProto.create({
    opType: 'Loop',
    name: 'train_steps',
    input: ['steps', 'loop.true', ...carried.map((c) => `init.${c.input}`)],
    output: [...carried.map((c) => `final.${c.input}`), ...spec.scanOutputs.map((name) => `all.${name}`)],
    attribute: [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: bodyGraph }],
  });
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'pt-recipe',
    producerVersion,
    graph: {
      name: 'train_loop',
      node: [loop],
      input: outerInputs,
      output: [
        ...carried.map((c) => info(`final.${c.input}`, c.value.dtype, c.value.shape)),
        ...spec.scanOutputs.map((name) => info(`all.${name}`, outputOf(name).dtype, ['K', ...outputOf(name).shape])),
      ],
      initializer: [
        onnx.TensorProto.create({ name: 'loop.true', dims: [], dataType: elemType('bool'), rawData: Uint8Array.of(1) }),
        ...body.constants,
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
