/**
 * Merging LoRA adapters into the weights they adapt, for export. A LoRA layer
 * (src/ir/lower/models.ts `withAdapters`, lowered by the interpreter's
 * `addAdapter`) computes
 *
 *     y = x @ w (+ b)  +  scale · (x @ lora_a) @ lora_b
 *
 * which is x @ (w + scale · lora_a @ lora_b) (+ b): one matmul with merged
 * weights, exactly, up to float rounding. `findAdapters` recognises that shape
 * in a graph (through the reshapes lowering puts around each matmul) and checks
 * that the adapter reads the same activation as the weight; `mergeAdapters`
 * drops the adapter branch (and the adapter inputs) and returns the merged
 * weights. Inference graphs only: in training the adapter's input goes through
 * dropout and the shapes no longer match.
 */
import { IrError, type Graph, type Node, type Value } from '../graph.js';
import type { Tensor } from '../tensor.js';
import { rewriteGraph } from './rewrite.js';
import { withoutUnusedInputs } from './qdq.js';

/** One adapted layer of a graph. */
export interface AdapterSite {
  /** The layer: its inputs' common prefix (`adapted.blocks.0.attn.qkv`). */
  readonly layer: string;
  /** Input names of the adapted weight [in, out] and the adapter matrices [in, r] and [r, out]. */
  readonly weight: string;
  readonly a: string;
  readonly b: string;
  /** alpha / rank. */
  readonly scale: number;
  /** The `add` that adds the adapter's output to the layer's; merging replaces its result by its first operand. */
  readonly add: Node;
  readonly base: Value;
}

/** The value before any reshapes. */
function throughReshapes(v: Value): Value {
  let at = v;
  while (at.producer?.op === 'reshape') at = at.producer.inputs[0]!;
  return at;
}

/** The only node reading `v` (after any reshapes of it), or null. */
function soleReader(graph: Graph, v: Value): Node | null {
  let at = v;
  for (;;) {
    const readers = graph.nodes.filter((n) => n.inputs.includes(at));
    if (readers.length !== 1) return null;
    if (readers[0]!.op !== 'reshape') return readers[0]!;
    at = readers[0]!.outputs[0]!;
  }
}

/** The matmul reading graph input `name` as its weight (input 1). */
function matmulOf(graph: Graph, name: string): Node | null {
  return graph.nodes.find((n) => n.op === 'matmul' && n.inputs[1]!.producer === null && n.inputs[1]!.inputName === name) ?? null;
}

/** Every LoRA layer of an inference graph; throws naming the layer when an adapter does not have the shape merging needs. */
export function findAdapters(graph: Graph): AdapterSite[] {
  const sites: AdapterSite[] = [];
  for (const input of graph.inputs) {
    const name = input.inputName!;
    if (!name.endsWith('.lora_a')) continue;
    const layer = name.slice(0, -'.lora_a'.length);
    const fail = (why: string): never => {
      throw new IrError(`merging the LoRA adapter of ${layer}: ${why}`);
    };
    const [a, b, w] = [matmulOf(graph, name), matmulOf(graph, `${layer}.lora_b`), matmulOf(graph, `${layer}.w`)];
    if (!a || !b || !w) return fail('expected matmuls by its weight w, lora_a and lora_b');
    if (throughReshapes(b.inputs[0]!) !== a.outputs[0]) fail('lora_b does not read x @ lora_a');
    if (throughReshapes(a.inputs[0]!) !== throughReshapes(w.inputs[0]!)) fail('the adapter does not read the activation the weight reads (dropout in the graph?)');
    const mul = soleReader(graph, b.outputs[0]!);
    const scaleNode = mul?.inputs.find((v) => v.producer?.op === 'constant')?.producer;
    const scaleValue = scaleNode?.attrs['value'] as Tensor | undefined;
    if (mul?.op !== 'mul' || !scaleValue || scaleValue.data.length !== 1) return fail('expected the adapter output scaled by a constant');
    const add = soleReader(graph, mul.outputs[0]!);
    if (add?.op !== 'add') return fail('expected the scaled adapter output added to the layer output');
    const base = add.inputs.find((v) => v !== mul.outputs[0]);
    if (!base) return fail("the adapter output is added to itself");
    sites.push({ layer, weight: `${layer}.w`, a: name, b: `${layer}.lora_b`, scale: scaleValue.data[0]!, add, base });
  }
  return sites;
}

/** w + scale · a @ b for w [in, out], a [in, r], b [r, out], row-major. */
export function mergedWeight(w: Float32Array, a: Float32Array, b: Float32Array, scale: number, inp: number, out: number): Float32Array {
  const r = a.length / inp;
  const merged = Float32Array.from(w);
  for (let i = 0; i < inp; i++) {
    for (let k = 0; k < r; k++) {
      const aik = scale * a[i * r + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < out; j++) merged[i * out + j]! += aik * b[k * out + j]!;
    }
  }
  return merged;
}

/**
 * The graph with every adapter merged: each adapted layer a single matmul by its
 * weight, the adapter inputs gone; and the weights with each adapted weight
 * replaced by its merged value (adapter matrices left out).
 */
export function mergeAdapters(graph: Graph, weights: ReadonlyMap<string, Float32Array>): { graph: Graph; weights: Map<string, Float32Array>; sites: AdapterSite[] } {
  const sites = findAdapters(graph);
  const byAdd = new Map(sites.map((s) => [s.add, s]));
  const merged = rewriteGraph(graph, 'merge-lora', (n, rw) => {
    const site = byAdd.get(n);
    return site ? [rw.value(site.base)] : undefined;
  });
  const out = new Map(weights);
  for (const s of sites) {
    const shape = graph.inputs.find((v) => v.inputName === s.weight)!.shape as [number, number];
    const need = (name: string): Float32Array => {
      const v = weights.get(name);
      if (!v) throw new IrError(`merging the LoRA adapter of ${s.layer}: no values for ${name}`);
      return v;
    };
    out.set(s.weight, mergedWeight(need(s.weight), need(s.a), need(s.b), s.scale, shape[0], shape[1]));
    out.delete(s.a);
    out.delete(s.b);
  }
  return { graph: withoutUnusedInputs(merged), weights: out, sites };
}
