/**
 * Will a model run on onnxruntime's CUDA execution provider, every node of it?
 * A node the CUDA provider has no kernel for (op, opset, tensor types) is
 * assigned to the CPU provider instead, silently, with copies between host and
 * device around it — every step. This check finds such nodes without a GPU,
 * from the table of the CUDA provider's kernels (cudaKernels.ts, generated
 * from onnxruntime's docs/OperatorKernels.md), walking Loop bodies too.
 *
 * `legalizeForCuda` rewrites the one op pt-recipe emits that has no CUDA
 * kernel outside onnxruntime's training builds, SoftmaxCrossEntropyLoss, into
 * ops that have one (LogSoftmax, GatherElements, a masked mean), so that a
 * train step runs on the GPU from end to end.
 *
 * What the table cannot say: kernels that exist but refuse an attribute value
 * at run time (this check reads op, opset and types, not attributes).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { CUDA_KERNELS } from './cudaKernels.js';
import type { KernelRange, OpKernels } from './cudaKernelsGen.js';
import { onnx, type ModelProto } from '../../targets/onnx/proto.js';
import type onnxProto from 'onnx-proto';

type GraphProto = onnxProto.onnx.IGraphProto;
type NodeProto = onnxProto.onnx.INodeProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
type AttributeProto = onnxProto.onnx.IAttributeProto;

/** A node that would not run on the CUDA provider, and why. */
export interface CudaFallback {
  /** The graph it is in (`train_step`, or `train_loop/body` for a Loop body). */
  readonly graph: string;
  readonly node: string;
  readonly opType: string;
  /** The node's doc_string: where in the recipe it comes from (`r.pt-recipe:12:5 forward`). */
  readonly origin: string;
  readonly reason: string;
}

/** ONNX TensorProto.DataType → the type names OperatorKernels.md uses. */
const ELEM_TYPE: Record<number, string> = {
  1: 'float', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'double', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

/** Ops whose nodes onnxruntime folds into initializers before assigning providers: no kernel runs. */
const NO_KERNEL_NEEDED = new Set(['Constant']);

/** The nodes of `model` (bytes or a decoded proto) that the CUDA provider has no kernel for. */
export function cudaFallbacks(model: Uint8Array | ModelProto, kernels: Readonly<Record<string, OpKernels>> = CUDA_KERNELS): CudaFallback[] {
  const proto = model instanceof Uint8Array ? onnx.ModelProto.decode(model) : model;
  const opset = Number(proto.opsetImport.find((o) => !o.domain)?.version ?? 0);
  const found: CudaFallback[] = [];
  walkGraph(proto.graph!, proto.graph?.name || 'main', new Map(), opset, kernels, found);
  return found;
}

/** Checks every node of `graph`; `outer` holds the types of the enclosing graphs' values (for Loop bodies). */
function walkGraph(graph: GraphProto, label: string, outer: ReadonlyMap<string, string>, opset: number, kernels: Readonly<Record<string, OpKernels>>, found: CudaFallback[]): void {
  const types = new Map(outer);
  const typeOf = (v: ValueInfoProto): void => {
    const t = ELEM_TYPE[v.type?.tensorType?.elemType ?? 0];
    if (t) types.set(v.name ?? '', t);
  };
  (graph.input ?? []).forEach(typeOf);
  (graph.valueInfo ?? []).forEach(typeOf);
  for (const init of graph.initializer ?? []) {
    const t = ELEM_TYPE[init.dataType ?? 0];
    if (t) types.set(init.name ?? '', t);
  }
  for (const node of graph.node ?? []) {
    const report = (reason: string): void => {
      found.push({ graph: label, node: node.name ?? '', opType: node.opType ?? '', origin: node.docString ?? '', reason });
    };
    const inputTypes = (node.input ?? []).map((name) => (name ? types.get(name) ?? null : null));
    const outputs = checkNode(node, inputTypes, opset, kernels, report);
    (node.output ?? []).forEach((name, i) => {
      const t = outputs[i];
      if (name && t) types.set(name, t);
    });
    for (const attr of node.attribute ?? []) if (attr.g) walkGraph(attr.g, `${label}/${attr.g.name || attr.name}`, types, opset, kernels, found);
  }
}

/** Reports what keeps `node` off the CUDA provider; returns its output types as far as they are known. */
function checkNode(node: NodeProto, inputs: readonly (string | null)[], opset: number, kernels: Readonly<Record<string, OpKernels>>, report: (reason: string) => void): (string | null)[] {
  const op = node.opType ?? '';
  if (NO_KERNEL_NEEDED.has(op)) return [constantType(node)];
  if (node.domain) {
    report(`${node.domain}.${op} is not an ai.onnx op; this check knows the CUDA provider's ai.onnx kernels only`);
    return (node.output ?? []).map(() => inputs[0] ?? null);
  }
  const k = kernels[op];
  const range = k?.ranges.find((r) => r.since <= opset && (r.until === null || opset <= r.until));
  if (!k || !range) {
    report(k ? `the CUDA provider has ${op} kernels, but none for opset ${opset}` : `the CUDA provider has no ${op} kernel (onnxruntime runs it on the CPU)`);
    return (node.output ?? []).map(() => inputs[0] ?? null);
  }
  // One reason per node: the first operand that does not fit.
  const problems: string[] = [];
  const bound = new Map<string, string>();
  inputs.forEach((t, i) => {
    // A variadic last input (Concat, Max) repeats its formal parameter.
    const param = k.inputs[Math.min(i, k.inputs.length - 1)];
    if (!t || !param) return;
    const problem = typeProblem(param, t, range, bound);
    if (problem) problems.push(`input ${i} (${param.name}) is ${t}: ${problem}`);
  });
  const outputs = (node.output ?? []).map((_, i) => {
    const param = k.outputs[Math.min(i, k.outputs.length - 1)];
    if (!param) return null;
    // An output whose type variable an input bound was checked there; others (Cast's, ConstantOfShape's) are checked here.
    const unbound = 'variable' in param.type && !bound.has(param.type.variable);
    const t = outputType(node, param, range, bound, inputs);
    const problem = t && unbound ? typeProblem(param, t, range, bound) : null;
    if (problem) problems.push(`output ${i} (${param.name}) is ${t}: ${problem}`);
    return t;
  });
  if (problems.length) report(problems[0]!);
  return outputs;
}

/** Why type `t` does not fit `param` in `range` (binding its type variable on first sight), or null. */
function typeProblem(param: OpKernels['inputs'][number], t: string, range: KernelRange, bound: Map<string, string>): string | null {
  if ('fixed' in param.type) return t === param.type.fixed ? null : `the kernel takes ${param.type.fixed}`;
  const allowed = allowedTypes(range, param.type.variable);
  if (!allowed.includes(t)) return `the CUDA kernel takes ${allowed.join(', ')}`;
  const already = bound.get(param.type.variable);
  if (already && already !== t) return `the other ${param.type.variable} operands are ${already}`;
  bound.set(param.type.variable, t);
  return null;
}

/**
 * The types a variable may take in a range. Some rows name their constraint
 * differently from the signature (Identity's 14–18 kernels use V where the
 * signature says T): a row with a single constraint then answers for it.
 */
function allowedTypes(range: KernelRange, variable: string): readonly string[] {
  const own = range.types[variable];
  if (own) return own;
  const all = Object.values(range.types);
  return all.length === 1 ? all[0]! : [];
}

function outputType(node: NodeProto, param: OpKernels['outputs'][number], range: KernelRange, bound: ReadonlyMap<string, string>, inputs: readonly (string | null)[]): string | null {
  if ('fixed' in param.type) return param.type.fixed;
  const v = param.type.variable;
  if (node.opType === 'Cast') return ELEM_TYPE[Number((node.attribute ?? []).find((a) => a.name === 'to')?.i ?? 0)] ?? null;
  if (node.opType === 'ConstantOfShape') return ELEM_TYPE[(node.attribute ?? []).find((a) => a.name === 'value')?.t?.dataType ?? 1] ?? 'float';
  const known = bound.get(v);
  if (known) return known;
  const allowed = allowedTypes(range, v);
  if (allowed.length === 1) return allowed[0]!;
  return inputs[0] ?? null;
}

function constantType(node: NodeProto): string | null {
  const a = (node.attribute ?? [])[0];
  if (!a) return null;
  if (a.t) return ELEM_TYPE[a.t.dataType ?? 0] ?? null;
  if (a.name === 'value_float' || a.name === 'value_floats') return 'float';
  if (a.name === 'value_int' || a.name === 'value_ints') return 'int64';
  return null;
}

/** One line per fallback: `train_step: node n12_SoftmaxCrossEntropyLoss (r.pt-recipe:9:15 forward): …`. */
export function formatFallbacks(fallbacks: readonly CudaFallback[]): string {
  return fallbacks.map((f) => `${f.graph}: node ${f.node} (${f.opType}${f.origin ? `, ${f.origin}` : ''}): ${f.reason}`).join('\n');
}

// ------------------------------------------------------------ legalization

const ATTR = onnx.AttributeProto.AttributeType;

/**
 * The model with every SoftmaxCrossEntropyLoss (reduction mean, 2-D scores
 * [N, C] and 1-D labels [N], as pt-recipe emits it) replaced by ops the CUDA
 * provider has kernels for:
 *
 *   loss = −Σ valid · log_softmax(scores)[n, label_n] / Σ valid,   valid = label ≠ ignore_index
 *
 * (0/0 = NaN when every label is ignored, as SoftmaxCrossEntropyLoss gives).
 * Other nodes are kept as they are; Loop bodies are rewritten too. Returns the
 * input unchanged (same bytes) when there is nothing to rewrite.
 */
export function legalizeForCuda(model: Uint8Array): Uint8Array {
  const proto = onnx.ModelProto.decode(model);
  const changed = legalizeGraph(proto.graph!);
  return changed ? onnx.ModelProto.encode(proto).finish() : model;
}

function legalizeGraph(graph: GraphProto): boolean {
  let changed = false;
  const nodes: NodeProto[] = [];
  for (const node of graph.node ?? []) {
    for (const attr of node.attribute ?? []) if (attr.g && legalizeGraph(attr.g)) changed = true;
    if (node.opType === 'SoftmaxCrossEntropyLoss' && !node.domain) {
      nodes.push(...crossEntropyFromLogSoftmax(node, graph));
      changed = true;
    } else {
      nodes.push(node);
    }
  }
  graph.node = nodes;
  return changed;
}

function crossEntropyFromLogSoftmax(node: NodeProto, graph: GraphProto): NodeProto[] {
  const reduction = (node.attribute ?? []).find((a) => a.name === 'reduction');
  const reductionText = reduction?.s ? new TextDecoder().decode(reduction.s) : 'mean';
  if (reductionText !== 'mean' || (node.input ?? []).length !== 2 || (node.output ?? []).length !== 1) {
    throw new Error(`legalizeForCuda: ${node.name}: only SoftmaxCrossEntropyLoss(scores, labels) with reduction 'mean' and one output is rewritten`);
  }
  const ignore = (node.attribute ?? []).find((a) => a.name === 'ignore_index');
  const [scores, labels] = (node.input ?? []) as [string, string];
  const p = `${node.name}.cuda.`;
  const docString = node.docString ?? '';
  const make = (opType: string, input: string[], output: string, attribute: AttributeProto[] = []): NodeProto =>
    onnx.NodeProto.create({ opType, input, output: [output], name: output, attribute, ...(docString ? { docString } : {}) });
  const int64 = (name: string, values: number[], dims: number[]): void => {
    (graph.initializer ??= []).push(onnx.TensorProto.create({ name, dataType: 7, dims, int64Data: values }));
  };
  const out: NodeProto[] = [];
  int64(`${p}ignore`, [Number(ignore?.i ?? -100)], []);
  int64(`${p}zero`, [0], []);
  int64(`${p}column`, [-1, 1], [2]);
  int64(`${p}row`, [-1], [1]);
  out.push(make('LogSoftmax', [scores], `${p}logp`, [onnx.AttributeProto.create({ name: 'axis', type: ATTR.INT, i: 1 })]));
  out.push(make('Equal', [labels, `${p}ignore`], `${p}ignored`));
  out.push(make('Not', [`${p}ignored`], `${p}valid`));
  // Ignored positions may hold any index (-100): gather a safe one, then mask it out.
  out.push(make('Where', [`${p}valid`, labels, `${p}zero`], `${p}safe`));
  out.push(make('Reshape', [`${p}safe`, `${p}column`], `${p}index`));
  out.push(make('GatherElements', [`${p}logp`, `${p}index`], `${p}picked2d`, [onnx.AttributeProto.create({ name: 'axis', type: ATTR.INT, i: 1 })]));
  out.push(make('Reshape', [`${p}picked2d`, `${p}row`], `${p}picked`));
  out.push(make('Cast', [`${p}valid`], `${p}weight`, [onnx.AttributeProto.create({ name: 'to', type: ATTR.INT, i: 1 })]));
  out.push(make('Mul', [`${p}picked`, `${p}weight`], `${p}masked`));
  out.push(make('ReduceSum', [`${p}masked`], `${p}total`, [onnx.AttributeProto.create({ name: 'keepdims', type: ATTR.INT, i: 0 })]));
  out.push(make('ReduceSum', [`${p}weight`], `${p}count`, [onnx.AttributeProto.create({ name: 'keepdims', type: ATTR.INT, i: 0 })]));
  out.push(make('Div', [`${p}total`, `${p}count`], `${p}mean`));
  out.push(onnx.NodeProto.create({ opType: 'Neg', input: [`${p}mean`], output: [(node.output ?? [])[0]!], name: `${p}loss`, ...(docString ? { docString } : {}) }));
  return out;
}

/** What `legalizeCompiledForCuda` did to one model file. */
export interface CudaReadiness {
  readonly file: string;
  /** Whether the file was rewritten (an op without a CUDA kernel replaced). */
  readonly rewritten: boolean;
  /** Nodes that would still run on the CPU. */
  readonly fallbacks: readonly CudaFallback[];
}

/**
 * Makes the ONNX files of a compiled stage in `dir` ready for the CUDA
 * provider (`ptr compile --device cuda`): each is legalized and rewritten in
 * place (atomically) when that changed it, and checked.
 */
export function legalizeCompiledForCuda(dir: string, files: readonly string[]): CudaReadiness[] {
  return files
    .filter((f) => f.endsWith('.onnx'))
    .map((file) => {
      const path = join(dir, file);
      const bytes = readFileSync(path);
      const legal = legalizeForCuda(bytes);
      if (legal !== bytes) writeFileAtomic(path, legal);
      return { file, rewritten: legal !== bytes, fallbacks: cudaFallbacks(legal).map((f) => ({ ...f, graph: `${file}: ${f.graph}` })) };
    });
}
