/**
 * Metrics as JSON lines (written, read back, a killed run's partial last line
 * tolerated) and the plain progress lines printed when the output is not a
 * terminal.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MetricsWriter, readMetrics } from '../../src/runtime/metrics.js';
import { createProgress, formatDuration } from '../../src/runtime/progress.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-metrics-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('metrics', () => {
  it('appends one JSON object per line, creating the directory', () => {
    const path = join(dir, 'run', 'sft', 'metrics.jsonl');
    const w = new MetricsWriter(path);
    w.write({ step: 1, stage: 'sft', loss: 2.5 });
    w.write({ step: 2, stage: 'sft', loss: 2.25, lr: 0.001 });
    expect(readFileSync(path, 'utf8')).toBe('{"step":1,"stage":"sft","loss":2.5}\n{"step":2,"stage":"sft","loss":2.25,"lr":0.001}\n');
    expect(readMetrics(path)).toEqual([
      { step: 1, stage: 'sft', loss: 2.5 },
      { step: 2, stage: 'sft', loss: 2.25, lr: 0.001 },
    ]);
  });

  it('keeps a diverged loss as a number through the file', () => {
    const path = join(dir, 'm.jsonl');
    new MetricsWriter(path).write({ step: 3, stage: 'NaN', loss: NaN, grad_norm: Infinity });
    expect(readFileSync(path, 'utf8')).toBe('{"step":3,"stage":"NaN","loss":"NaN","grad_norm":"Infinity"}\n');
    expect(readMetrics(path)).toEqual([{ step: 3, stage: 'NaN', loss: NaN, grad_norm: Infinity }]);
  });

  it('ignores a final line cut short by a killed run', () => {
    const path = join(dir, 'm.jsonl');
    writeFileSync(path, '{"step":1,"stage":"pretrain","loss":3}\n{"step":2,"stage":"pretrain","lo');
    expect(readMetrics(path)).toEqual([{ step: 1, stage: 'pretrain', loss: 3 }]);
  });

  it('cuts the partial line off before a resumed run appends', () => {
    const path = join(dir, 'm.jsonl');
    writeFileSync(path, '{"step":1,"stage":"pretrain","loss":3}\n{"step":2,"sta');
    new MetricsWriter(path).write({ step: 2, stage: 'pretrain', loss: 2 });
    expect(readMetrics(path)).toEqual([
      { step: 1, stage: 'pretrain', loss: 3 },
      { step: 2, stage: 'pretrain', loss: 2 },
    ]);
  });

  it('rejects a malformed line in the middle, naming the line', () => {
    const path = join(dir, 'm.jsonl');
    writeFileSync(path, '{"step":1,"stage":"a"}\n{oops\n');
    appendFileSync(path, '{"step":3,"stage":"a"}\n');
    expect(() => readMetrics(path)).toThrow(`${path}:2: not a metrics record`);
  });
});

describe('progress (not a terminal)', () => {
  const capture = (): { stream: Writable; text: () => string } => {
    let out = '';
    const stream = new Writable({
      write(chunk, _enc, done) {
        out += String(chunk);
        done();
      },
    });
    return { stream, text: () => out };
  };

  it('prints a plain line every N steps and at the last step', () => {
    const { stream, text } = capture();
    let t = 0;
    const p = createProgress({ stage: 'pretrain', total: 1000, stream, isTTY: false, every: 100, now: () => t });
    for (let step = 0; step <= 1000; step += 50) {
      p.update(step, { loss: 2.34119, tokensPerSec: 12345.4 });
      t += 4000; // 50 steps every 4 s: 80 ms a step
    }
    p.log('eval loss 2.1');
    p.stop();
    const lines = text().trimEnd().split('\n');
    expect(lines).toHaveLength(12);
    expect(lines[0]).toBe('pretrain  step 0/1000  loss 2.3412  12,345 tok/s  eta ?');
    // 100 steps in 8 s so far; 900 to go at 80 ms each is 72 s.
    expect(lines[1]).toBe('pretrain  step 100/1000  loss 2.3412  12,345 tok/s  eta 1m12s');
    expect(lines[10]).toBe('pretrain  step 1000/1000  loss 2.3412  12,345 tok/s  eta 0s');
    expect(lines[11]).toBe('eval loss 2.1');
  });

  it('draws a bar on a terminal, with logged lines above it', () => {
    const { stream, text } = capture();
    Object.assign(stream, { isTTY: true, columns: 160 });
    const p = createProgress({ stage: 'sft', total: 10, stream });
    p.update(5, { loss: 1.5, tokensPerSec: 2000 });
    p.log('checkpoint written');
    p.stop();
    expect(text()).toContain('checkpoint written\n');
    expect(text()).toContain('sft  ');
    expect(text()).toContain('step 5/10  loss 1.5000  2,000 tok/s');
  });

  it('formats durations', () => {
    expect(formatDuration(45.4)).toBe('45s');
    expect(formatDuration(80)).toBe('1m20s');
    expect(formatDuration(7500)).toBe('2h05m');
  });
});
