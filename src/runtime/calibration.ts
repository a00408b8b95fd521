/**
 * Activation ranges for post-training quantization, collected over calibration
 * batches one tensor at a time, by onnxruntime's calibration methods
 * (onnxruntime/python/tools/quantization/calibrate.py; REFERENCE.md §3.3):
 *
 * - `minmax`: the smallest and largest value seen.
 * - `percentile` (default 99.999, symmetric): a histogram of |x| (2048 bins,
 *   spanning the first batch's |x| and widened in bins of the same width when a
 *   later batch goes further); the threshold is the left edge of the first bin
 *   where the cumulative share reaches the percentile.
 * - `entropy`: a histogram of x on [-t, t] (t the largest |x|, widened
 *   symmetrically as batches go further), then the threshold whose int8
 *   quantization keeps the distribution closest in KL divergence (TensorRT's
 *   method, as onnxruntime computes it, integer division of merged bins
 *   included). onnxruntime's `create_calibrator` defaults to 128 bins and 128
 *   quantized bins, which leaves exactly one candidate (the whole range, i.e.
 *   minmax); we use 2048 bins and 128 quantized bins, the histogram TensorRT
 *   searches.
 *
 * Every range is clamped to the values actually seen; a symmetric int8 scale is
 * then max(|lo|, |hi|) / 127.
 */
import { INT8_MAX, MIN_ABSMAX } from '../ir/ops/quant.js';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'entropy'];

export interface CalibrationOptions {
  readonly method: CalibrationMethod;
  /** For `percentile`: the share of |x| kept inside the range, in percent (default 99.999). */
  readonly percentile?: number;
  /** Histogram bins (default 2048). */
  readonly bins?: number;
  /** For `entropy`: the quantized bins the histogram is compared at (default 128). */
  readonly quantizedBins?: number;
}

export const DEFAULT_PERCENTILE = 99.999;

/** What calibration found for one tensor. */
export interface CalibratedRange {
  /** The smallest and largest values seen. */
  readonly min: number;
  readonly max: number;
  /** The range the method chose (within [min, max]). */
  readonly lo: number;
  readonly hi: number;
}

/** The symmetric int8 scale of a range: max(|lo|, |hi|) / 127 (never zero). */
export function symmetricScale(range: Pick<CalibratedRange, 'lo' | 'hi'>): number {
  return Math.max(Math.abs(range.lo), Math.abs(range.hi), MIN_ABSMAX) / INT8_MAX;
}

/** Collects one tensor's values batch after batch; `range()` gives the calibrated range. */
export interface RangeCollector {
  collect(values: ArrayLike<number>): void;
  range(): CalibratedRange;
}

export function rangeCollector(options: CalibrationOptions): RangeCollector {
  switch (options.method) {
    case 'minmax':
      return new MinMaxCollector();
    case 'percentile':
      return new PercentileCollector(options.bins ?? 2048, options.percentile ?? DEFAULT_PERCENTILE);
    case 'entropy':
      return new EntropyCollector(options.bins ?? 2048, options.quantizedBins ?? 128);
  }
}

function minMax(values: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return values.length ? { min, max } : { min: 0, max: 0 };
}

/** The smallest and largest values seen; the histogram methods extend it. */
class MinMaxCollector implements RangeCollector {
  protected min = Infinity;
  protected max = -Infinity;
  /** Returns this batch's own min and max. */
  collect(values: ArrayLike<number>): { min: number; max: number } {
    const m = minMax(values);
    this.min = Math.min(this.min, m.min);
    this.max = Math.max(this.max, m.max);
    return m;
  }
  range(): CalibratedRange {
    if (this.min > this.max) throw new Error('calibration: no values were collected');
    return { min: this.min, max: this.max, lo: this.min, hi: this.max };
  }
}

/** Adds values into uniform bins starting at `first` of width `width` (values outside are dropped; the last edge is inclusive, as numpy's histogram). */
function addToHistogram(hist: Float64Array, first: number, width: number, values: ArrayLike<number>, transform: (v: number) => number = (v) => v): void {
  const n = hist.length;
  const last = first + n * width;
  for (let i = 0; i < values.length; i++) {
    const v = transform(values[i]!);
    if (!(v >= first && v <= last)) continue;
    hist[Math.min(n - 1, Math.floor((v - first) / width))]! += 1;
  }
}

/** Clamps a chosen range to the values seen. */
function clampToSeen(lo: number, hi: number, min: number, max: number): CalibratedRange {
  return { min, max, lo: Math.max(lo, min), hi: Math.min(hi, max) };
}

class PercentileCollector extends MinMaxCollector {
  private hist: Float64Array | null = null;
  private first = 0;
  private width = 0;

  constructor(
    private readonly bins: number,
    private readonly percentile: number,
  ) {
    super();
  }

  override collect(values: ArrayLike<number>): { min: number; max: number } {
    const m = super.collect(values);
    const abs = minMax(Array.from(values, Math.abs));
    if (!this.hist) {
      // The first batch sets the bins over its own |x| range (numpy's default histogram range).
      this.first = abs.min;
      this.width = abs.max > abs.min ? (abs.max - abs.min) / this.bins : 1 / this.bins;
      this.hist = new Float64Array(this.bins);
    } else if (abs.max > this.first + this.hist.length * this.width) {
      // Wider: more bins of the same width, as onnxruntime extends its edges with np.arange.
      const needed = Math.ceil((abs.max - this.first) / this.width);
      const grown = new Float64Array(needed);
      grown.set(this.hist);
      this.hist = grown;
    }
    addToHistogram(this.hist, this.first, this.width, values, Math.abs);
    return m;
  }

  override range(): CalibratedRange {
    if (!this.hist) throw new Error('calibration: no values were collected');
    const total = this.hist.reduce((a, b) => a + b, 0);
    const target = this.percentile / 100;
    let cumulative = 0;
    let index = this.hist.length;
    for (let i = 0; i < this.hist.length; i++) {
      cumulative += this.hist[i]! / total;
      if (cumulative >= target) {
        index = i;
        break;
      }
    }
    const t = this.first + index * this.width;
    return clampToSeen(-t, t, this.min, this.max);
  }
}

class EntropyCollector extends MinMaxCollector {
  private hist: Float64Array | null = null;
  private threshold = 0;

  constructor(
    private readonly bins: number,
    private readonly quantizedBins: number,
  ) {
    super();
  }

  override collect(values: ArrayLike<number>): { min: number; max: number } {
    const m = super.collect(values);
    const t = Math.max(Math.abs(m.min), Math.abs(m.max));
    if (!this.hist) {
      this.threshold = t;
      this.hist = new Float64Array(this.bins);
    } else if (t > this.threshold) {
      const old = this.hist;
      if (this.threshold === 0) {
        this.threshold = t;
        this.hist = new Float64Array(old.length);
        this.hist.set(old);
      } else {
        // Grow by whole bins of the old width on both sides, so the old counts stay in their bins.
        const stride = (2 * this.threshold) / old.length;
        const half = Math.floor((t - this.threshold) / stride) + 1;
        this.threshold += half * stride;
        this.hist = new Float64Array(old.length + 2 * half);
        this.hist.set(old, half);
      }
    }
    const width = this.threshold > 0 ? (2 * this.threshold) / this.hist.length : 1 / this.hist.length;
    addToHistogram(this.hist, this.threshold > 0 ? -this.threshold : -0.5, width, values);
    return m;
  }

  override range(): CalibratedRange {
    if (!this.hist) throw new Error('calibration: no values were collected');
    const t = entropyThreshold(this.hist, this.threshold, this.quantizedBins);
    return clampToSeen(-t, t, this.min, this.max);
  }
}

/** numpy-free `scipy.stats.entropy(p, q)`: KL(p ‖ q) of the normalised distributions. */
function klDivergence(p: Float64Array, q: Float64Array): number {
  const sp = p.reduce((a, b) => a + b, 0);
  const sq = q.reduce((a, b) => a + b, 0);
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]! / sp;
    if (pi > 0) kl += pi * Math.log(pi / (q[i]! / sq));
  }
  return kl;
}

/** onnxruntime's smooth_distribution: move eps of mass onto empty bins; null when every bin is empty. */
function smooth(p: Float64Array, eps = 1e-4): Float64Array | null {
  const zeros = p.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
  const nonZeros = p.length - zeros;
  if (nonZeros === 0) return null;
  const eps1 = (eps * zeros) / nonZeros;
  // onnxruntime computes in float32; float64 here only moves the result by rounding.
  return p.map((v) => (v === 0 ? eps : v - eps1));
}

/**
 * The threshold t (a histogram edge) whose clipped-and-quantized distribution is
 * nearest the full one: `hist` has bins over [-threshold, threshold].
 */
export function entropyThreshold(hist: Float64Array, threshold: number, quantizedBins: number): number {
  const bins = hist.length;
  const zero = Math.floor(bins / 2);
  const halfQ = Math.floor(quantizedBins / 2);
  const width = (2 * threshold) / bins;
  const edge = (i: number): number => -threshold + i * width;
  let best = Infinity;
  let bestT = threshold;
  for (let i = halfQ; i <= zero; i++) {
    const start = zero - i;
    const end = Math.min(zero + i + 1, bins);
    const sliced = hist.slice(start, end);
    const p = sliced.slice();
    let left = 0;
    for (let k = 0; k < start; k++) left += hist[k]!;
    let right = 0;
    for (let k = end; k < bins; k++) right += hist[k]!;
    p[0]! += left;
    p[p.length - 1]! += right;
    const merged = Math.floor(sliced.length / quantizedBins);
    const quantized = new Float64Array(quantizedBins);
    for (let j = 0; j < quantizedBins; j++) for (let k = j * merged; k < (j + 1) * merged; k++) quantized[j]! += sliced[k]!;
    for (let k = quantizedBins * merged; k < sliced.length; k++) quantized[quantizedBins - 1]! += sliced[k]!;
    // Expanded back over the bins that are non-empty in p; onnxruntime's q is an integer array, so the share is truncated.
    const q = new Float64Array(p.length);
    for (let j = 0; j < quantizedBins; j++) {
      let norm = 0;
      for (let k = j * merged; k < (j + 1) * merged; k++) if (p[k] !== 0) norm++;
      if (norm !== 0) q.fill(Math.trunc(quantized[j]! / norm), j * merged, (j + 1) * merged);
    }
    const ps = smooth(p);
    const qs = smooth(q);
    const kl = ps && qs ? klDivergence(ps, qs) : Infinity;
    // numpy's argmin: the first of equal divergences (the first candidate when all are infinite).
    if (kl < best || i === halfQ) {
      best = kl;
      bestT = Math.max(Math.abs(edge(start)), Math.abs(edge(end)));
    }
  }
  return bestT;
}
