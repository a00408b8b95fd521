/**
 * `ptr compile FILE -o DIR`: lower a stage to ONNX files and write them with
 * manifest.json. `ptr ir FILE`: print one of a stage's graphs in IR text.
 */
import { printGraph } from '../ir/printer.js';
import { sizeOf } from '../ir/tensor.js';
import { formatFallbacks, legalizeCompiledForCuda } from '../runtime/cudaCheck.js';
import { compileStageTo, stageGraph } from '../stages/compileStage.js';
import type { Io } from './io.js';
import { checkedModule, chosenStage } from './pipeline.js';

export interface CompileCommandOptions {
  readonly out: string;
  readonly stage?: string;
  readonly steps?: number;
  /** `cuda`: rewrite ops without a CUDA kernel and check that every node has one (exit 1 if not). */
  readonly device?: 'cpu' | 'cuda';
}

export function runCompile(io: Io, file: string, options: CompileCommandOptions, version: string): number {
  const t0 = performance.now();
  const module = checkedModule(io, file);
  if (!module) return 1;
  const { plan, compiled, weightsEmbedded } = compileStageTo(module, chosenStage(module, options.stage), options.out, { recipe: file, version, ...(options.steps ? { steps: options.steps } : {}) });
  if (!weightsEmbedded) io.out(`note: ${plan.model}'s weights come from another stage's checkpoint; inference.onnx takes them as inputs\n`);
  const ms = performance.now() - t0;
  for (const r of compiled.passes) {
    io.out(`${r.graph.padEnd(11)} ${String(r.before).padStart(6)} IR nodes → ${String(r.after).padStart(6)} after ${r.perPass.map((p) => `${p.pass} ${p.nodes}`).join(', ')}\n`);
  }
  const params = plan.params.reduce((n, p) => n + sizeOf(p.shape), 0);
  io.out(`compiled stage ${plan.stage} (${params.toLocaleString('en-US')} parameters) to ${options.out}/ in ${ms.toFixed(0)} ms: ${compiled.files.map((f) => f.name).join(', ')}, manifest.json\n`);
  if (options.device !== 'cuda') return 0;
  const ready = legalizeCompiledForCuda(options.out, compiled.files.map((f) => f.name));
  const rewritten = ready.filter((r) => r.rewritten).map((r) => r.file);
  if (rewritten.length) io.out(`cuda: rewrote SoftmaxCrossEntropyLoss (no CUDA kernel) as LogSoftmax + GatherElements in ${rewritten.join(', ')}\n`);
  const left = ready.flatMap((r) => r.fallbacks);
  if (left.length === 0) {
    io.out(`cuda: every node of ${ready.map((r) => r.file).join(', ')} has a CUDA kernel\n`);
    return 0;
  }
  io.err(`error: ${left.length} node${left.length > 1 ? 's' : ''} would run on the CPU under --device cuda:\n${formatFallbacks(left)}\n`);
  return 1;
}

export interface IrCommandOptions {
  readonly stage?: string;
  readonly graph?: string;
  readonly optimized?: boolean;
  readonly provenance?: boolean;
}

export function runIr(io: Io, file: string, options: IrCommandOptions): number {
  const module = checkedModule(io, file);
  if (!module) return 1;
  const graph = stageGraph(module, chosenStage(module, options.stage), options.graph ?? 'train_step', options.optimized ?? false);
  io.out(printGraph(graph, { provenance: options.provenance ?? false }));
  return 0;
}
