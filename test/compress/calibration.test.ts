/**
 * Calibration methods (src/runtime/calibration.ts) on data whose answer is
 * known by hand: minmax, the percentile histogram (onnxruntime's left-edge
 * threshold, bins widened across batches), and the entropy threshold (clips a
 * lone outlier, keeps a uniform range whole).
 */
import { describe, expect, it } from 'vitest';
import { entropyThreshold, rangeCollector, symmetricScale } from '../../src/runtime/calibration.js';
import { Prng } from '../../src/runtime/prng.js';

describe('minmax', () => {
  it('keeps the smallest and largest value over all batches', () => {
    const c = rangeCollector({ method: 'minmax' });
    c.collect([0.5, -1, 2]);
    c.collect([3, -0.25]);
    expect(c.range()).toEqual({ min: -1, max: 3, lo: -1, hi: 3 });
    expect(symmetricScale(c.range())).toBe(3 / 127);
  });
});

describe('percentile', () => {
  it('cuts at the left edge of the bin where the share of |x| reaches the percentile', () => {
    // 999 values i/1000 (i = 0..998) and one outlier at 100: 2048 bins over [0, 100], width 100/2048.
    // 99.9% is reached with the 999th value, 0.998, in bin floor(0.998 / (100/2048)) = 20, whose left edge is 20·100/2048.
    const c = rangeCollector({ method: 'percentile', percentile: 99.9 });
    c.collect([...Array.from({ length: 999 }, (_, i) => i / 1000), 100]);
    const r = c.range();
    expect(r.hi).toBeCloseTo((20 * 100) / 2048, 12);
    // Symmetric: -hi, clamped to the smallest value seen (0).
    expect(r.lo).toBe(0);
    expect(symmetricScale(r)).toBeCloseTo((20 * 100) / 2048 / 127, 12);
  });

  it('widens its bins when a later batch goes further, keeping their width', () => {
    // Batch 1: |x| in [0, 1] → width 1/2048. Batch 2 reaches 2: the histogram grows to 4096 bins of the same width.
    const c = rangeCollector({ method: 'percentile', percentile: 50 });
    c.collect(Array.from({ length: 2049 }, (_, i) => i / 2048));
    c.collect(Array.from({ length: 2049 }, (_, i) => 1 + i / 2048));
    // 4098 values, the 2049th (50%) is 1.0, the first value of bin 2048: left edge 2048/2048 = 1.
    expect(c.range().hi).toBeCloseTo(1, 10);
  });
});

describe('entropy', () => {
  it('keeps the whole range of uniform data', () => {
    const prng = new Prng(1);
    const c = rangeCollector({ method: 'entropy' });
    c.collect(Array.from({ length: 20000 }, () => 2 * prng.uniform() - 1));
    const r = c.range();
    expect(r.hi).toBeGreaterThan(0.95 * r.max);
  });

  it('clips a lone far outlier of normal data to within a few standard deviations', () => {
    const prng = new Prng(2);
    const c = rangeCollector({ method: 'entropy' });
    c.collect([...Array.from({ length: 20000 }, () => prng.normal()), 60]);
    const r = c.range();
    expect(r.max).toBe(60);
    expect(r.hi).toBeGreaterThan(3);
    expect(r.hi).toBeLessThan(15);
  });

  it('gives the first of equally good thresholds: with as many bins as quantized bins, the whole range', () => {
    // onnxruntime's default (128 bins, 128 quantized bins) leaves one candidate: the histogram's edge.
    const hist = new Float64Array(128).fill(1);
    expect(entropyThreshold(hist, 5, 128)).toBe(5);
  });
});
