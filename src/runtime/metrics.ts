/**
 * Training metrics as JSON lines (`{"step":100,"stage":"sft","loss":2.31,...}`),
 * one object per line, appended and flushed as they happen so a killed run
 * keeps everything up to its last step. Non-finite numbers (a diverged loss)
 * are written as the strings "NaN", "Infinity", "-Infinity" to keep each line
 * valid JSON, and read back as numbers.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, truncateSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { UserError, withPath } from './errors.js';

/** A metrics file with a line that is not a record (edited by hand, or damaged). */
export class MetricsError extends UserError {}

export interface MetricsRecord {
  step: number;
  stage: string;
  [metric: string]: unknown;
}

export class MetricsWriter {
  constructor(readonly path: string) {
    withPath(path, () => {
      mkdirSync(dirname(path), { recursive: true });
      dropPartialLastLine(path);
    });
  }

  /** Appends one record as a line. */
  write(record: MetricsRecord): void {
    withPath(this.path, () => appendFileSync(this.path, `${JSON.stringify(record, encodeNonFinite)}\n`));
  }
}

/** Reads a metrics file; a final line cut short by a killed run is ignored. */
export function readMetrics(file: string): MetricsRecord[] {
  const text = withPath(file, () => readFileSync(file, 'utf8'));
  const lines = text.split('\n');
  // Text after the last newline is a line the writer never finished (or nothing).
  const last = lines.pop()!;
  const records = lines.flatMap((line, i) => {
    if (line.trim() === '') return [];
    let record: unknown;
    try {
      record = JSON.parse(line, decodeNonFinite);
    } catch (e) {
      throw new MetricsError(`${file}:${i + 1}: not a metrics record: ${(e as Error).message} (delete the line, or move the file away)`);
    }
    const r = record as Partial<MetricsRecord> | null;
    if (r === null || typeof r !== 'object' || Array.isArray(r) || typeof r.step !== 'number' || typeof r.stage !== 'string') {
      throw new MetricsError(`${file}:${i + 1}: not a metrics record: expected an object with "step" and "stage" (delete the line, or move the file away)`);
    }
    return [r as MetricsRecord];
  });
  if (last.trim() !== '') {
    try {
      records.push(JSON.parse(last, decodeNonFinite) as MetricsRecord);
    } catch {
      // Cut short mid-write: ignore it.
    }
  }
  return records;
}

/**
 * A run resumed after a kill must not glue its first record onto the killed run's
 * half-written line, so that line is cut off before appending.
 */
function dropPartialLastLine(file: string): void {
  if (!existsSync(file)) return;
  const bytes = readFileSync(file);
  if (bytes.length === 0 || bytes[bytes.length - 1] === 0x0a) return;
  truncateSync(file, bytes.lastIndexOf(0x0a) + 1);
}

const NON_FINITE = new Set(['NaN', 'Infinity', '-Infinity']);

function encodeNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

function decodeNonFinite(key: string, value: unknown): unknown {
  return key !== 'stage' && typeof value === 'string' && NON_FINITE.has(value) ? Number(value) : value;
}

/** Rewrites a metrics file keeping only the records `keep` accepts (a resumed run drops the steps it recomputes). */
export function filterMetrics(file: string, keep: (record: MetricsRecord) => boolean): void {
  if (!existsSync(file)) return;
  const kept = readMetrics(file).filter(keep);
  writeFileAtomic(file, kept.map((r) => `${JSON.stringify(r, encodeNonFinite)}\n`).join(''));
}
