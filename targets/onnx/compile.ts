/**
 * A stage plan → ONNX files and the manifest the runtime drives them with:
 * one `<graph>.onnx` per graph the plan names (plus `<loop>.onnx` when the plan
 * runs K steps per call) and manifest.json, the plan serialised with each graph
 * replaced by its file entry. Optimisation passes run here, and their node
 * counts go into the manifest.
 */
import type { Graph, Value } from '../../src/ir/graph.js';
import type { StagePlan } from '../../src/ir/lower/plan.js';
import { optimize, type PassReport } from '../../src/ir/passes/index.js';
import { stackedBatchInputName } from '../../src/check/dataSchema.js';
import { emitModel } from './emit.js';
import { emitLoopModel } from './loop.js';

export const MANIFEST_FORMAT = 'pt-recipe-manifest/2';

export interface TensorEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

export interface GraphEntry {
  readonly file: string;
  readonly inputs: readonly TensorEntry[];
  readonly outputs: readonly TensorEntry[];
  readonly nodes: { readonly ir: number; readonly optimized: number; readonly onnx: number };
}

/** manifest.json: the stage plan with its graphs as file entries. */
export interface Manifest<Settings = unknown> extends Omit<StagePlan<Settings>, 'graphs'> {
  readonly format: string;
  readonly recipe: string;
  readonly graphs: Readonly<Record<string, GraphEntry>>;
}

export interface CompiledFile {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface Compiled<Settings = unknown> {
  readonly manifest: Manifest<Settings>;
  readonly files: readonly CompiledFile[];
  readonly passes: readonly PassReport[];
  /** The optimised graphs by name, for `ptr ir --optimized` and tests. */
  readonly graphs: Readonly<Record<string, Graph>>;
}

export interface CompileOptions {
  readonly producerVersion?: string;
  /** Weights to store as initializers of one graph (by input name); without them its parameters are inputs. */
  readonly weights?: { readonly graph: string; readonly values: ReadonlyMap<string, Float32Array> };
}

export function compilePlan<Settings>(plan: StagePlan<Settings>, recipe: string, options: CompileOptions = {}): Compiled<Settings> {
  const producerVersion = options.producerVersion ?? '';
  const files: CompiledFile[] = [];
  const passes: PassReport[] = [];
  const graphs: Record<string, Graph> = {};
  const entries: Record<string, GraphEntry> = {};
  for (const [name, g] of Object.entries(plan.graphs)) {
    const initializers = options.weights?.graph === name ? options.weights.values : undefined;
    const { graph, report } = optimize(g);
    passes.push(report);
    const file = `${name}.onnx`;
    // A graph with dynamic sizes (prefill, decode): dim_params, and -1 for those sizes in the manifest.
    const dims = plan.dims?.[name];
    const model = emitModel(graph, { producerVersion, docString: `${recipe}: stage ${plan.stage}, ${g.name}`, ...(initializers ? { initializers } : {}), ...(dims ? { dims } : {}) });
    const shapeOf = (v: Value): readonly number[] => dims?.shapes.get(v.id)?.map((d) => (typeof d === 'number' ? d : -1)) ?? v.shape;
    files.push({ name: file, bytes: model.bytes });
    graphs[name] = graph;
    entries[name] = {
      file,
      inputs: graph.inputs.filter((v) => !initializers?.has(v.inputName!)).map((v) => tensorEntry(v.inputName!, v.dtype, shapeOf(v))),
      outputs: graph.outputs.map((o) => tensorEntry(o.name, o.value.dtype, shapeOf(o.value))),
      nodes: { ir: g.nodes.length, optimized: graph.nodes.length, onnx: model.nodeCount },
    };
  }
  if (plan.loop) {
    const loop = emitLoop(plan, graphs[plan.loop.body]!, producerVersion);
    files.push({ name: loop.entry.file, bytes: loop.bytes });
    entries[plan.loop.name] = loop.entry;
  }
  const { graphs: _graphs, dims: _dims, ...rest } = plan;
  const manifest: Manifest<Settings> = { format: MANIFEST_FORMAT, recipe, ...rest, graphs: entries };
  return { manifest, files, passes, graphs };
}

function tensorEntry(name: string, dtype: string, shape: readonly number[]): TensorEntry {
  return { name, dtype, shape: [...shape] };
}

/** The loop model: the optimised body graph run K times in one call (see loop.ts for its inputs and outputs). */
function emitLoop(plan: StagePlan<unknown>, body: Graph, producerVersion: string): { bytes: Uint8Array; entry: GraphEntry } {
  const loop = plan.loop!;
  const fields = plan.data[loop.data]!.fields;
  const bytes = emitLoopModel(body, { feedback: plan.feedback, batchFields: fields, scanOutputs: loop.scanOutputs }, producerVersion);
  const carried = new Set(Object.values(plan.feedback));
  const batchInputs = new Set(fields.map((f) => f.input));
  const input = (name: string) => body.inputs.find((v) => v.inputName === name)!;
  const inputs = [
    tensorEntry('steps', 'i64', []),
    tensorEntry('step0', 'i64', []),
    tensorEntry('seed_base', 'i64', []),
    ...[...carried].map((x) => tensorEntry(`init.${x}`, input(x).dtype, input(x).shape)),
    ...body.inputs.filter((v) => !carried.has(v.inputName!) && !batchInputs.has(v.inputName!) && v.inputName !== 'step' && v.inputName !== 'seed').map((v) => tensorEntry(v.inputName!, v.dtype, v.shape)),
    // -1: the number of steps in the run.
    ...fields.map((f) => tensorEntry(stackedBatchInputName(f.field), f.dtype, [-1, ...f.shape])),
  ];
  const outputs = [...[...carried].map((x) => tensorEntry(`final.${x}`, input(x).dtype, input(x).shape)), ...loop.scanOutputs.map((n) => tensorEntry(`all.${n}`, 'f32', [-1]))];
  const file = `${loop.name}.onnx`;
  return { bytes, entry: { file, inputs, outputs, nodes: { ir: body.nodes.length, optimized: body.nodes.length, onnx: 1 } } };
}
