/**
 * A lowered train stage → ONNX files and the manifest the runtime drives them
 * with: train_step.onnx, eval.onnx, inference.onnx and manifest.json.
 * Optimisation passes run here, and their node counts go into the manifest.
 */
import type { Graph } from '../../src/ir/graph.js';
import type { TrainPlan } from '../../src/ir/lower/stage.js';
import { optimize, type PassReport } from '../../src/ir/passes/index.js';
import { emitModel } from './emit.js';
import { emitLoopModel } from './loop.js';

export const MANIFEST_FORMAT = 'pt-recipe-manifest/1';

export interface GraphEntry {
  readonly file: string;
  readonly inputs: readonly { readonly name: string; readonly dtype: string; readonly shape: readonly number[] }[];
  readonly outputs: readonly { readonly name: string; readonly dtype: string; readonly shape: readonly number[] }[];
  readonly nodes: { readonly ir: number; readonly optimized: number; readonly onnx: number };
}

export interface Manifest extends Omit<TrainPlan, 'graphs'> {
  readonly format: string;
  readonly recipe: string;
  readonly graphs: { readonly train_step: GraphEntry; readonly train_loop: GraphEntry; readonly eval: GraphEntry | null; readonly inference: GraphEntry };
}

export interface CompiledFile {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface Compiled {
  readonly manifest: Manifest;
  readonly files: readonly CompiledFile[];
  readonly passes: readonly PassReport[];
  /** The optimised graphs, for `ptr ir --optimized` and tests. */
  readonly graphs: { readonly trainStep: Graph; readonly eval: Graph | null; readonly inference: Graph };
}

export interface CompileOptions {
  readonly producerVersion?: string;
  /** Weights to store in inference.onnx as initializers (by input name); without them its parameters are inputs. */
  readonly inferenceWeights?: ReadonlyMap<string, Float32Array>;
}

export function compilePlan(plan: TrainPlan, recipe: string, options: CompileOptions = {}): Compiled {
  const producerVersion = options.producerVersion ?? '';
  const files: CompiledFile[] = [];
  const passes: PassReport[] = [];
  const emit = (g: Graph, file: string, initializers?: ReadonlyMap<string, Float32Array>): { entry: GraphEntry; graph: Graph } => {
    const { graph, report } = optimize(g);
    passes.push(report);
    const model = emitModel(graph, { producerVersion, docString: `${recipe}: stage ${plan.stage}, ${g.name}`, ...(initializers ? { initializers } : {}) });
    files.push({ name: file, bytes: model.bytes });
    const io = (name: string, v: { dtype: string; shape: readonly number[] }) => ({ name, dtype: v.dtype, shape: [...v.shape] });
    return {
      graph,
      entry: {
        file,
        inputs: graph.inputs.filter((v) => !initializers?.has(v.inputName!)).map((v) => io(v.inputName!, v)),
        outputs: graph.outputs.map((o) => io(o.name, o.value)),
        nodes: { ir: g.nodes.length, optimized: graph.nodes.length, onnx: model.nodeCount },
      },
    };
  };
  const train = emit(plan.graphs.trainStep, 'train_step.onnx');
  const trainLoop = emitTrainLoop(plan, train.graph, producerVersion);
  files.push({ name: trainLoop.file, bytes: trainLoop.bytes });
  const evalG = plan.graphs.eval ? emit(plan.graphs.eval, 'eval.onnx') : null;
  const inference = emit(plan.graphs.inference, 'inference.onnx', options.inferenceWeights);
  const { graphs: _graphs, ...rest } = plan;
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    recipe,
    ...rest,
    graphs: { train_step: train.entry, train_loop: trainLoop.entry, eval: evalG?.entry ?? null, inference: inference.entry },
  };
  return { manifest, files, passes, graphs: { trainStep: train.graph, eval: evalG?.graph ?? null, inference: inference.graph } };
}

/** train_loop.onnx: the optimised train step as the body of a Loop (see loop.ts). */
function emitTrainLoop(plan: TrainPlan, step: Graph, producerVersion: string): { file: string; bytes: Uint8Array; entry: GraphEntry } {
  const batchInputs = plan.batch.map((f) => f.input);
  const bytes = emitLoopModel(step, { feedback: plan.feedback, batchInputs, scanOutputs: ['loss', 'grad_norm', 'lr'] }, producerVersion);
  const carried = new Set(Object.values(plan.feedback));
  const shape = (name: string) => step.inputs.find((v) => v.inputName === name)!;
  const io = (name: string, dtype: string, dims: readonly number[]) => ({ name, dtype, shape: [...dims] });
  const inputs = [
    io('steps', 'i64', []),
    io('step0', 'i64', []),
    io('seed_base', 'i64', []),
    ...[...carried].map((x) => io(`init.${x}`, shape(x).dtype, shape(x).shape)),
    ...step.inputs.filter((v) => !carried.has(v.inputName!) && !batchInputs.includes(v.inputName!) && v.inputName !== 'step' && v.inputName !== 'seed').map((v) => io(v.inputName!, v.dtype, v.shape)),
    // -1: the number of steps in the run.
    ...plan.batch.map((f) => io(`batches.${f.field}`, f.dtype, [-1, ...f.shape])),
  ];
  const outputs = [...[...carried].map((x) => io(`final.${x}`, shape(x).dtype, shape(x).shape)), ...['loss', 'grad_norm', 'lr'].map((n) => io(`all.${n}`, 'f32', [-1]))];
  return { file: 'train_loop.onnx', bytes, entry: { file: 'train_loop.onnx', inputs, outputs, nodes: { ir: step.nodes.length, optimized: step.nodes.length, onnx: 1 } } };
}
