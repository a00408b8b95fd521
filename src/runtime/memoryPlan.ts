/**
 * The peak memory a stage will need, predicted before it runs from what is known
 * statically: the parameters and optimizer state (in and out of every step: the
 * step graph is functional), the gradients, the activations of the step graph
 * (every forward value, from the graph's static shapes), the tokenized data, and
 * a fixed cost of the process itself (Node, onnxruntime, the compiler). `ptr plan`
 * prints it per stage; `ptr run` refuses a stage whose prediction exceeds the
 * memory available, unless forced. bench/memplan.ts measures the prediction
 * against the peak RSS of real runs.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import type { Graph, Node, Value } from '../ir/graph.js';
import type { StagePlan } from '../ir/lower/plan.js';
import { sizeOf, type DType } from '../ir/tensor.js';
import { UserError } from './errors.js';

/** Bytes of each part of a stage's predicted peak. */
export interface MemoryPrediction {
  /** Parameters (all models the stage reads), as step inputs. */
  readonly params: number;
  /** One gradient per trainable element. */
  readonly grads: number;
  /** Optimizer state (AdamW: two moments per trainable element), as step inputs. */
  readonly optimizer: number;
  /** The new parameters and optimizer state a step returns while its inputs are still alive. */
  readonly stepOutputs: number;
  /** The forward values alive at the step's peak: a measured share of every value the forward part of the step graph produces (static shapes). */
  readonly activations: number;
  /** The tokenized data held for batching. */
  readonly data: number;
  /** Node, onnxruntime and the compiler, and the copies of the weights onnxruntime makes (measured; see bench/memplan.ts). */
  readonly runtime: number;
  readonly total: number;
}

/**
 * Fitted to the peak RSS of `ptr run` on six configurations, from the quickstart at
 * batch 4 to dim 256 × 12 layers at batch 48 (bench/memplan.ts; README, "Memory"):
 * the process itself (Node, onnxruntime, the compiler's graphs) is about 200 MiB;
 * onnxruntime reuses buffers, so 44% of all forward values are alive at the peak;
 * the weights, gradients and optimizer state cost 1.3× their size (the copies
 * onnxruntime makes of inputs and outputs, and the allocator's slack).
 */
const RUNTIME_BASE = 200 * 2 ** 20;
const ACTIVE_SHARE = 0.44;
const WEIGHT_OVERHEAD = 0.3;

const BYTES: Readonly<Record<DType, number>> = { f32: 4, f16: 2, bf16: 2, i64: 8, i32: 4, i8: 1, u8: 1, bool: 1 };

function bytesOf(v: Value): number {
  return sizeOf(v.shape) * BYTES[v.dtype];
}

function isForward(n: Node): boolean {
  return !n.scope.startsWith('grad') && !n.scope.startsWith('optimizer');
}

/**
 * Predicts a stage's peak memory from its plan and its (optimised) step graph;
 * `dataBytes` is the size of its data files on disk.
 */
export function predictStageMemory(plan: StagePlan, step: Graph, dataBytes: number): MemoryPrediction {
  const params = plan.params.reduce((n, p) => n + sizeOf(p.shape) * BYTES[p.dtype], 0);
  const grads = plan.params.filter((p) => p.trainable).reduce((n, p) => n + sizeOf(p.shape) * 4, 0);
  const optimizer = plan.state.reduce((n, s) => n + sizeOf(s.shape) * 4, 0);
  const stepOutputs = grads + optimizer;
  let forward = 0;
  for (const n of step.nodes) if (isForward(n)) for (const v of n.outputs) forward += bytesOf(v);
  const activations = ACTIVE_SHARE * forward;
  // A character (or byte) of text becomes one int32 id and one mask byte; subword tokenizers make fewer.
  const data = dataBytes * 5;
  const runtime = RUNTIME_BASE + WEIGHT_OVERHEAD * (params + grads + optimizer + stepOutputs);
  const total = params + grads + optimizer + stepOutputs + activations + data + runtime;
  return { params, grads, optimizer, stepOutputs, activations, data, runtime, total };
}

/** Bytes of the data files a stage reads (those that exist yet). */
export function stageDataBytes(plan: StagePlan): number {
  const files = new Set(Object.values(plan.data).map((d) => d.spec.path));
  let bytes = 0;
  for (const f of files) if (f && existsSync(f)) bytes += statSync(f).size;
  return bytes;
}

/**
 * Memory this process may still use: the kernel's MemAvailable (free plus
 * reclaimable cache) where /proc/meminfo has it, capped by a cgroup limit (a
 * container's), else os.freemem().
 */
export function availableMemory(): number {
  let available = freemem();
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) available = Number(m[1]) * 1024;
  } catch {
    // Not Linux: os.freemem() it is.
  }
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const limit = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(limit) && limit > 0 && limit < totalmem()) available = Math.min(available, limit);
    } catch {
      // No such cgroup file.
    }
  }
  return available;
}

/** A stage predicted to need more memory than there is. */
export class OutOfMemoryError extends UserError {}

/** `29.1 KiB`, `12.3 MiB`, `1.25 GiB`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Throws OutOfMemoryError when `prediction` exceeds `available`, naming the biggest parts and what to do. */
export function requireMemory(stage: string, prediction: MemoryPrediction, available: number): void {
  if (prediction.total <= available) return;
  const names = { activations: 'activations', params: 'weights', optimizer: 'optimizer state', grads: 'gradients', stepOutputs: 'new weights and state', data: 'data' } as const;
  const parts = (Object.keys(names) as (keyof typeof names)[])
    .map((k) => [names[k], prediction[k]] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 2)
    .map(([k, v]) => `${k} ${formatBytes(v)}`);
  throw new OutOfMemoryError(
    `stage ${stage} is predicted to need ${formatBytes(prediction.total)} at its peak (${parts.join(', ')}), but only ${formatBytes(available)} is available; ` +
      `lower batch (or use grad_accum), the sequence length or the model size, or give --force to run anyway (see ptr plan)`,
  );
}
