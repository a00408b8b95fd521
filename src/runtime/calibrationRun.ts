/**
 * Post-training quantization at run time: the calibration pass over a
 * dataset's batches (activation ranges per site, by the stage's method), the
 * error each site's int8 rounding makes, and the int8 model's logits against
 * the float model's on the same batches. Everything runs in onnxruntime; the
 * statistics are computed here.
 */
import type { Graph } from '../ir/graph.js';
import { quantizeValue } from '../ir/ops/quant.js';
import { optimize } from '../ir/passes/index.js';
import { activationScaleInput, foldWeightQuantization, quantizedWeightInputs, type QuantizedWeights } from '../ir/passes/qdq.js';
import { emitModel, type InitializerData } from '../../targets/onnx/emit.js';
import { rangeCollector, type CalibratedRange, type CalibrationOptions } from './calibration.js';
import { createSession, ort, type OrtSession, type OrtTensor } from './ort.js';

/** One calibration batch: the forward's inputs other than the weights (`tokens`). */
export type CalibrationBatch = Readonly<Record<string, OrtTensor>>;

/** What the calibration graph outputs for a site: `activation.<site>`. */
export function activationOutput(site: string): string {
  return `activation.${site}`;
}

/** Runs `session` on every batch with the weights; calls `each` with its outputs. */
async function runBatches(session: OrtSession, weights: ReadonlyMap<string, OrtTensor>, batches: readonly CalibrationBatch[], each: (out: Record<string, OrtTensor>) => void): Promise<void> {
  const feeds: Record<string, OrtTensor> = {};
  for (const name of session.inputNames) {
    const w = weights.get(name);
    if (w) feeds[name] = w;
  }
  for (const batch of batches) each(await session.run({ ...feeds, ...batch }));
}

/** Calibrated ranges of every site's activation: the calibration graph run over the batches. */
export async function calibrateRanges(session: OrtSession, weights: ReadonlyMap<string, OrtTensor>, sites: readonly string[], batches: readonly CalibrationBatch[], options: CalibrationOptions): Promise<Map<string, CalibratedRange>> {
  const collectors = new Map(sites.map((s) => [s, rangeCollector(options)]));
  await runBatches(session, weights, batches, (out) => {
    for (const [site, c] of collectors) c.collect(out[activationOutput(site)]!.data as Float32Array);
  });
  return new Map([...collectors].map(([s, c]) => [s, c.range()]));
}

/** ‖x − int8(x)‖ / ‖x‖ summed over batches: each site's activation rounding error at its scale. */
export async function activationErrors(session: OrtSession, weights: ReadonlyMap<string, OrtTensor>, scales: ReadonlyMap<string, number>, batches: readonly CalibrationBatch[]): Promise<Map<string, number>> {
  const sums = new Map([...scales.keys()].map((s) => [s, { err: 0, norm: 0 }]));
  await runBatches(session, weights, batches, (out) => {
    for (const [site, acc] of sums) {
      const s = scales.get(site)!;
      const x = out[activationOutput(site)]!.data as Float32Array;
      for (let i = 0; i < x.length; i++) {
        const d = x[i]! - quantizeValue(x[i]!, s) * s;
        acc.err += d * d;
        acc.norm += x[i]! * x[i]!;
      }
    }
  });
  return new Map([...sums].map(([s, a]) => [s, a.norm > 0 ? Math.sqrt(a.err / a.norm) : 0]));
}

/** Per weight: its per-channel scales' range and ‖w − int8(w)‖ / ‖w‖. */
export interface WeightQuantization {
  readonly minScale: number;
  readonly maxScale: number;
  readonly relativeError: number;
}

/** What quantizing each site's weight does to it, from the folded int8 values. */
export function weightErrors(weights: ReadonlyMap<string, Float32Array>, quantized: QuantizedWeights, weightNames: readonly string[]): Map<string, WeightQuantization> {
  const out = new Map<string, WeightQuantization>();
  for (const name of weightNames) {
    const w = weights.get(name)!;
    const names = quantizedWeightInputs(name);
    const q = quantized.get(names.values) as Int8Array;
    const s = quantized.get(names.scale) as Float32Array;
    let err = 0;
    let norm = 0;
    for (let i = 0; i < w.length; i++) {
      const d = w[i]! - q[i]! * s[i % s.length]!;
      err += d * d;
      norm += w[i]! * w[i]!;
    }
    out.set(name, { minScale: Math.min(...s), maxScale: Math.max(...s), relativeError: norm > 0 ? Math.sqrt(err / norm) : 0 });
  }
  return out;
}

/** An exported model: its bytes and, for the int8 form, the folded weights. */
export interface BuiltModel {
  readonly bytes: Uint8Array;
  readonly quantized: QuantizedWeights;
}

/** The float model: `graph` with its weights as initializers. */
export function floatModel(graph: Graph, weights: ReadonlyMap<string, Float32Array>): BuiltModel {
  const used = new Set(graph.inputs.map((v) => v.inputName!));
  const initializers = new Map([...weights].filter(([k]) => used.has(k)));
  return { bytes: emitModel(optimize(graph).graph, { initializers }).bytes, quantized: new Map() };
}

/** The int8 QDQ model of a fake-quantized graph: weights folded to int8, activation scales as initializers. */
export function int8Model(fakeQuant: Graph, weights: ReadonlyMap<string, Float32Array>, activationScales: ReadonlyMap<string, number>): BuiltModel {
  const { graph, initializers } = foldWeightQuantization(fakeQuant, weights);
  const used = new Set(graph.inputs.map((v) => v.inputName!));
  const all = new Map<string, InitializerData>();
  for (const [k, v] of weights) if (used.has(k)) all.set(k, v);
  for (const [site, s] of activationScales) if (used.has(activationScaleInput(site))) all.set(activationScaleInput(site), Float32Array.of(s));
  for (const [k, v] of initializers) all.set(k, v);
  return { bytes: emitModel(optimize(graph).graph, { initializers: all }).bytes, quantized: initializers };
}

/** How far the int8 model's logits are from the float model's. */
export interface LogitError {
  /** Largest |int8 − float| over every logit. */
  readonly maxAbs: number;
  /** Mean |int8 − float|. */
  readonly meanAbs: number;
  /** The float logits' largest magnitude, for scale. */
  readonly floatMaxAbs: number;
  /** Share of positions whose top token is the same. */
  readonly top1Agreement: number;
}

/** Runs both models on the batches and compares their `logits` ([B, T, V]). */
export async function compareLogits(floatBytes: Uint8Array, int8Bytes: Uint8Array, batches: readonly CalibrationBatch[], threads?: number): Promise<LogitError> {
  const [f, q] = await Promise.all([createSession(floatBytes, 'cpu', threads), createSession(int8Bytes, 'cpu', threads)]);
  let maxAbs = 0;
  let sum = 0;
  let count = 0;
  let floatMaxAbs = 0;
  let agree = 0;
  let positions = 0;
  try {
    for (const batch of batches) {
      const a = (await f.run(batch))['logits']!;
      const b = (await q.run(batch))['logits']!;
      const x = a.data as Float32Array;
      const y = b.data as Float32Array;
      const vocab = a.dims[a.dims.length - 1]!;
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(x[i]! - y[i]!);
        maxAbs = Math.max(maxAbs, d);
        floatMaxAbs = Math.max(floatMaxAbs, Math.abs(x[i]!));
        sum += d;
        count++;
      }
      for (let p = 0; p < x.length; p += vocab) {
        positions++;
        if (argmax(x, p, vocab) === argmax(y, p, vocab)) agree++;
      }
    }
  } finally {
    await Promise.all([f.release(), q.release()]);
  }
  return { maxAbs, meanAbs: count ? sum / count : 0, floatMaxAbs, top1Agreement: positions ? agree / positions : 1 };
}

function argmax(x: Float32Array, start: number, n: number): number {
  let best = start;
  for (let i = start + 1; i < start + n; i++) if (x[i]! > x[best]!) best = i;
  return best - start;
}

/** A scalar f32 tensor (an activation scale in the parameter store). */
export function scaleTensor(scale: number): OrtTensor {
  return new ort.Tensor('float32', Float32Array.of(scale), []);
}
