/**
 * The IR verifier: the invariants every graph must keep, checked from scratch.
 * `optimize` runs it before the passes and after each one when `PTR_VERIFY=1`
 * (the test suite sets it), so a pass that breaks a graph is named at once
 * rather than found later as a wrong number or an onnxruntime error.
 */
import { describeNode, IrError, type Graph, type Value } from './graph.js';
import { lookupOp } from './ops/index.js';
import { formatShapeList, sameShape } from './tensor.js';

/** Whether `PTR_VERIFY=1` asks for the verifier after every pass. */
export function verifyRequested(): boolean {
  return process.env['PTR_VERIFY'] === '1';
}

/**
 * Checks `graph` and throws an IrError naming `stage` (`after pass cse`), the
 * graph and the node at fault on the first problem:
 * - graph inputs have unique names and ids and no producer;
 * - every node's inputs are graph inputs or outputs of earlier nodes (constants are nodes);
 * - every node's outputs are new values whose `producer` is that node;
 * - the op's type rule, run again, gives each output's recorded dtype and shape;
 * - node ids are unique; graph outputs have unique names and are computed.
 */
export function verifyGraph(graph: Graph, stage: string): void {
  const fail = (message: string): never => {
    throw new IrError(`IR verifier, ${stage}, graph ${graph.name}: ${message}`);
  };
  const defined = new Set<Value>();
  const valueIds = new Set<number>();
  const inputNames = new Set<string>();
  const newValue = (v: Value, what: string): void => {
    if (defined.has(v)) fail(`${what}: value %${v.id} is defined twice`);
    if (valueIds.has(v.id)) fail(`${what}: value id %${v.id} is used by two values`);
    defined.add(v);
    valueIds.add(v.id);
  };

  for (const v of graph.inputs) {
    const name = v.inputName;
    if (!name) fail(`input %${v.id} has no name`);
    if (inputNames.has(name!)) fail(`two inputs are named ${name}`);
    if (v.producer !== null) fail(`input ${name} has a producer (${v.producer.op})`);
    inputNames.add(name!);
    newValue(v, `input ${name}`);
  }

  const nodeIds = new Set<number>();
  graph.nodes.forEach((node, index) => {
    const at = `node ${index} ${describeNode(node)}`;
    if (nodeIds.has(node.id)) fail(`${at}: node id ${node.id} is used twice`);
    nodeIds.add(node.id);
    node.inputs.forEach((v, i) => {
      if (!defined.has(v)) fail(`${at}: input ${i} (%${v.id}) is neither a graph input nor computed by an earlier node`);
    });
    let types;
    try {
      types = lookupOp(node.op).infer(node.inputs, node.attrs);
    } catch (e) {
      return fail(`${at}: the type rule rejects the node: ${(e as Error).message}`);
    }
    if (types.length !== node.outputs.length) fail(`${at}: has ${node.outputs.length} outputs, its type rule gives ${types.length}`);
    node.outputs.forEach((o, i) => {
      if (o.producer !== node) fail(`${at}: output ${i} (%${o.id}) names ${o.producer ? `another node (${describeNode(o.producer)})` : 'no node'} as its producer`);
      if (o.inputName !== null) fail(`${at}: output ${i} (%${o.id}) is also graph input ${o.inputName}`);
      const t = types[i]!;
      if (o.dtype !== t.dtype || !sameShape(o.shape, t.shape)) {
        fail(`${at}: output ${i} (%${o.id}) is recorded as ${o.dtype}${formatShapeList(o.shape)}, its type rule gives ${t.dtype}${formatShapeList(t.shape)}`);
      }
      newValue(o, at);
    });
  });

  const outputNames = new Set<string>();
  for (const o of graph.outputs) {
    if (!o.name) fail('an output has no name');
    if (outputNames.has(o.name)) fail(`two outputs are named ${o.name}`);
    outputNames.add(o.name);
    if (!defined.has(o.value)) fail(`output ${o.name} (%${o.value.id}) is not computed by the graph`);
    // ONNX names outputs and inputs in one namespace: an output may share an input's name only by being that input.
    if (inputNames.has(o.name) && o.value.inputName !== o.name) fail(`output ${o.name} has the name of an input but is another value`);
  }
}
