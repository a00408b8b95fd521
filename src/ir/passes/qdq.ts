/**
 * The int8 QDQ form of a model: the one module that puts quantization into a
 * graph, for post-training quantization, quantization-aware training and the
 * int8 exports (ONNX, TensorRT).
 *
 * A **site** is a matmul of an activation by a weight — a graph input of rank 2,
 * [in, out] (a `Linear` layer's `w`). The final projection to logits (a matmul
 * whose result is a graph output, directly or through a bias) is not a site,
 * and nothing else is quantized: norms, softmax, attention's activation-by-
 * activation matmuls and embeddings stay float, as onnxruntime's QDQ quantizer
 * and TensorRT recommend for transformers.
 *
 * Two forms, in two steps:
 * - `insertFakeQuant`: every site reads `fake_quant(x, <site>.input_scale)`
 *   (a per-tensor scale, a new graph input the calibration or training fills)
 *   and `fake_quant(w, absmax_scale(w, axis 1))` (symmetric per output
 *   channel). The graph still takes float weights; it computes exactly what the
 *   int8 model computes, and it is differentiable (straight-through), so QAT
 *   trains it as it is.
 * - `foldWeightQuantization`: with the weights known, each weight's
 *   `fake_quant(w, absmax_scale(w))` becomes `dequantize_linear(w_q, w_scale)`
 *   on two new inputs, the int8 weight `<w>.quantized` and its scales
 *   `<w>.scale`, whose values it returns (initializers of an exported model).
 *   In ONNX this is QuantizeLinear → DequantizeLinear on activations and
 *   DequantizeLinear on int8 weights before each MatMul: the QDQ layout
 *   onnxruntime fuses into integer kernels and TensorRT builds int8 engines from
 *   (symmetric, zero point 0, per-channel weights on axis 1, opset ≥ 13).
 */
import { IrError, type Attrs, type Graph, type Node, type Value } from '../graph.js';
import { lookupOp } from '../ops/index.js';
import { makeTensor, type Tensor } from '../tensor.js';
import { eliminateDeadCode } from './dce.js';
import { rewriteGraph } from './rewrite.js';

/** One quantized matmul: activation @ weight. */
export interface QuantSite {
  /** The layer's name: the weight's input name less a trailing `.w` (`gpt.blocks.0.attn.qkv`). */
  readonly name: string;
  /** The matmul node in the graph the sites were found in. */
  readonly node: Node;
  /** Its activation operand (input 0). */
  readonly activation: Value;
  /** The weight's graph input name. */
  readonly weight: string;
}

/** The graph input holding a site's per-tensor activation scale. */
export function activationScaleInput(site: string): string {
  return `${site}.input_scale`;
}

/** The graph inputs `foldWeightQuantization` gives a weight: its int8 values and its per-channel scales. */
export function quantizedWeightInputs(weight: string): { readonly values: string; readonly scale: string } {
  return { values: `${weight}.quantized`, scale: `${weight}.scale` };
}

/**
 * Whether `v` becomes a graph output with nothing but reshapes and one bias add
 * in between (lowering flattens a matmul to 2-D and back): the logits.
 */
function reachesOutputDirectly(graph: Graph, v: Value): boolean {
  const outputs = new Set(graph.outputs.map((o) => o.value));
  let at = v;
  for (;;) {
    if (outputs.has(at)) return true;
    const readers = graph.nodes.filter((n) => n.inputs.includes(at));
    const next = readers[0];
    if (readers.length !== 1 || !(next!.op === 'reshape' || (next!.op === 'add' && next!.inputs.every((x) => x === at || x.producer === null)))) return false;
    at = next!.outputs[0]!;
  }
}

/** The quantization sites of a graph, in graph order. */
export function quantSites(graph: Graph): QuantSite[] {
  const sites: QuantSite[] = [];
  for (const node of graph.nodes) {
    if (node.op !== 'matmul') continue;
    const [x, w] = node.inputs as [Value, Value];
    if (w.producer !== null || w.inputName === null || w.shape.length !== 2 || w.dtype !== 'f32') continue;
    if (reachesOutputDirectly(graph, node.outputs[0]!)) continue;
    sites.push({ name: w.inputName.replace(/\.w$/, ''), node, activation: x, weight: w.inputName });
  }
  return sites;
}

export interface FakeQuantOptions {
  /** Weights get one scale per output channel (true, the default) or one per weight. */
  readonly perChannel?: boolean;
}

/**
 * The fake-quantized graph: each site's activation and weight through `fake_quant`
 * (see the module comment). Sites that share a name share one scale input.
 */
export function insertFakeQuant(graph: Graph, sites: readonly QuantSite[] = quantSites(graph), options: FakeQuantOptions = {}): Graph {
  const weightAxis: Attrs = options.perChannel === false ? {} : { axis: 1 };
  const bySite = new Map(sites.map((s) => [s.node, s]));
  const scales = new Map<string, Value>();
  const weights = new Map<Value, Value>();
  return rewriteGraph(graph, 'fake-quant', (n, rw) => {
    const site = bySite.get(n);
    if (!site) return undefined;
    const b = rw.b;
    let scale = scales.get(site.name);
    if (!scale) scales.set(site.name, (scale = b.input(activationScaleInput(site.name), 'f32', [])));
    const x = b.one('fake_quant', [rw.value(site.activation), scale]);
    const w = rw.value(n.inputs[1]!);
    let wq = weights.get(w);
    if (!wq) weights.set(w, (wq = b.one('fake_quant', [w, b.one('absmax_scale', [w], weightAxis)], weightAxis)));
    return [b.matmul(x, wq)];
  });
}

/** Values of the graph inputs `foldWeightQuantization` adds: Int8Array weights, Float32Array scales. */
export type QuantizedWeights = Map<string, Int8Array | Float32Array>;

/**
 * The int8 form of a fake-quantized graph: every `fake_quant(w, absmax_scale(w, axis))`
 * of a weight input whose values are in `weights` becomes `dequantize_linear` of the
 * int8 weight, quantized here by the op table's own reference semantics (so the
 * exported integers are exactly what the fake-quantized graph computes with).
 * Weight inputs no longer read are dropped from the graph's inputs.
 */
export function foldWeightQuantization(graph: Graph, weights: ReadonlyMap<string, Float32Array>): { graph: Graph; initializers: QuantizedWeights } {
  const initializers: QuantizedWeights = new Map();
  const folded = new Map<Value, Value>();
  const rewritten = rewriteGraph(graph, 'fold-weight-quantization', (n, rw) => {
    if (n.op !== 'fake_quant') return undefined;
    const [w, scale] = n.inputs as [Value, Value];
    const observer = scale.producer;
    if (w.producer !== null || observer?.op !== 'absmax_scale' || observer.inputs[0] !== w) return undefined;
    const data = weights.get(w.inputName!);
    if (!data) throw new IrError(`fold-weight-quantization: no values for the weight ${w.inputName}`);
    const done = folded.get(w);
    if (done) return [done];
    const wt: Tensor = makeTensor('f32', w.shape, data);
    const [s] = lookupOp('absmax_scale').evaluate([wt], observer.attrs);
    const [q] = lookupOp('quantize_linear').evaluate([wt, s!], n.attrs);
    const names = quantizedWeightInputs(w.inputName!);
    initializers.set(names.values, Int8Array.from(q!.data));
    initializers.set(names.scale, Float32Array.from(s!.data));
    const b = rw.b;
    const out = b.one('dequantize_linear', [b.input(names.values, 'i8', w.shape), b.input(names.scale, 'f32', s!.shape)], n.attrs);
    folded.set(w, out);
    return [out];
  });
  return { graph: withoutUnusedInputs(rewritten), initializers };
}

/** The graph without dead nodes (the folded weights' observers) and without the inputs nothing reads any more (the float weights). */
export function withoutUnusedInputs(graph: Graph): Graph {
  const live = eliminateDeadCode(graph);
  const read = new Set<Value>(live.outputs.map((o) => o.value));
  for (const n of live.nodes) for (const v of n.inputs) read.add(v);
  return { ...live, inputs: live.inputs.filter((v) => read.has(v)) };
}
