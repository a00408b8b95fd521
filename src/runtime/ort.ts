/**
 * The bridge to onnxruntime-node: sessions on CPU or CUDA, and conversion
 * between reference tensors (float64 data) and ORT tensors.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { decodeHalf, encodeHalf } from '../ir/floatBits.js';
import { castValue, type DType, type Tensor } from '../ir/tensor.js';
import { cudaFallbacks, formatFallbacks, legalizeForCuda } from './cudaCheck.js';
import { UserError } from './errors.js';

export type OrtTensor = InstanceType<typeof ort.Tensor>;
export type OrtSession = Awaited<ReturnType<typeof ort.InferenceSession.create>>;
export type Device = 'cpu' | 'cuda';

export { ort };

export class DeviceError extends UserError {}

/**
 * ORT's worker threads spin-wait for work after each parallel section. That
 * buys about 5% of step time on an idle machine (dim256 train step, 2 threads:
 * 186 vs 198 ms on an idle 16-core Xeon) but costs 2–3× when another process
 * shares the cores (2-core VM, load average 6–12: 493 vs 186 ms; with one more
 * busy process 1,112 vs 258 ms; `npm run bench -- --only sessions`). So no
 * session spins: training on a shared machine, or beside an idle eval session,
 * must not be slowed severalfold.
 */
const NO_SPINNING = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };

/** A session for a model (bytes or a path), on the requested device, with `threads` intra-op threads (default: ORT's, one per physical core). */
export async function createSession(model: Uint8Array | string, device: Device = 'cpu', threads?: number): Promise<OrtSession> {
  const options: Parameters<typeof ort.InferenceSession.create>[1] = {
    executionProviders: device === 'cuda' ? ['cuda'] : ['cpu'],
    graphOptimizationLevel: 'all',
    // ORT's memory-pattern planner kept a second arena's worth of buffers; the step time did not change.
    enableMemPattern: false,
    ...(threads ? { intraOpNumThreads: threads } : {}),
    extra: NO_SPINNING,
  };
  if (device === 'cuda') {
    requireCuda();
    const bytes = typeof model === 'string' ? readFileSync(model) : model;
    const prepared = prepareForCuda(bytes, typeof model === 'string' ? model : 'the model');
    // A model loaded by path keeps its path when nothing was rewritten (external data is found beside it).
    if (prepared !== bytes) model = prepared;
  }
  try {
    return typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  } catch (e) {
    if (device === 'cuda') throw new DeviceError(`--device cuda: onnxruntime could not start its CUDA execution provider: ${(e as Error).message}`);
    throw e;
  }
}

/**
 * A model as the CUDA provider should get it: ops without a CUDA kernel
 * rewritten (cudaCheck.ts), and a warning on stderr for any node that would
 * still run on the CPU (each step, with copies to and from the GPU around it).
 */
function prepareForCuda(model: Uint8Array, what: string): Uint8Array {
  const legal = legalizeForCuda(model);
  const left = cudaFallbacks(legal);
  if (left.length) process.stderr.write(`warning: ${left.length} node${left.length > 1 ? 's' : ''} of ${what} would run on the CPU, not on CUDA:\n${formatFallbacks(left)}\n`);
  return legal;
}

const CUDA_HELP = "install it with 'npm run setup:cuda' on a machine with CUDA 12 and cuDNN 9, or use --device cpu";

/** Fails with a clear message unless onnxruntime-node's CUDA provider library is installed. */
export function requireCuda(): void {
  const dir = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
  if (!existsSync(join(dir, 'libonnxruntime_providers_cuda.so'))) {
    throw new DeviceError(`--device cuda: this onnxruntime-node install has no CUDA execution provider (no libonnxruntime_providers_cuda.so in ${dir}); ${CUDA_HELP}`);
  }
}

export function toOrt(t: Tensor): OrtTensor {
  const dims = [...t.shape];
  switch (t.dtype) {
    case 'f32':
      return new ort.Tensor('float32', Float32Array.from(t.data), dims);
    case 'f16':
      return new ort.Tensor('float16', encodeHalf('f16', t.data), dims);
    case 'i64':
      return new ort.Tensor('int64', BigInt64Array.from(t.data, (v) => BigInt(v)), dims);
    case 'i32':
      return new ort.Tensor('int32', Int32Array.from(t.data, castValue('i32')), dims);
    case 'i8':
      return new ort.Tensor('int8', Int8Array.from(t.data, castValue('i8')), dims);
    case 'u8':
      return new ort.Tensor('uint8', Uint8Array.from(t.data, castValue('u8')), dims);
    case 'bool':
      return new ort.Tensor('bool', Uint8Array.from(t.data), dims);
    case 'bf16':
      // onnxruntime-node's tensors have no bfloat16 type: bf16 stays inside models (initializers, casts).
      throw new Error('onnxruntime-node cannot pass bf16 tensors in or out of a model; cast to f32 at the graph boundary');
  }
}

const FROM_ORT: Record<string, DType> = { float32: 'f32', float16: 'f16', int64: 'i64', int32: 'i32', int8: 'i8', uint8: 'u8', bool: 'bool' };

export function fromOrt(t: OrtTensor): Tensor {
  const dtype = FROM_ORT[t.type];
  if (!dtype) throw new Error(`unsupported ORT tensor type ${t.type}`);
  // float16 comes back as its bit patterns (Uint16Array).
  const src = dtype === 'f16' ? decodeHalf('f16', t.data as Uint16Array) : (t.data as ArrayLike<number | bigint>);
  const data = new Float64Array(src.length);
  for (let i = 0; i < src.length; i++) data[i] = Number(src[i]);
  return { dtype, shape: [...t.dims], data };
}

/** Runs a model (bytes or a path) once on reference tensors (for tests and small checks). */
export async function runOnce(model: Uint8Array | string, feeds: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>> {
  const session = await createSession(model);
  try {
    const input: Record<string, OrtTensor> = {};
    for (const [k, v] of feeds) input[k] = toOrt(v);
    const out = await session.run(input);
    return new Map(Object.entries(out).map(([k, v]) => [k, fromOrt(v as OrtTensor)]));
  } finally {
    await session.release();
  }
}
