/** Small helpers shared by the benchmarks: medians, number formatting, tables. */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** `n` with a fixed number of decimals and thousands separators. */
export function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function pct(ratio: number, digits = 1): string {
  return `${fmt(ratio * 100, digits)}%`;
}

/** GFLOP/s from FLOPs and seconds. */
export function gflops(flops: number, seconds: number): string {
  return fmt(flops / seconds / 1e9, 1);
}

export function mib(bytes: number, digits = 1): string {
  return fmt(bytes / 2 ** 20, digits);
}

/**
 * A text table: header, rule, rows. `align` has one letter per column, `l` or
 * `r`; by default the first column is left-aligned and the others right-aligned.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[], align?: string): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const left = (i: number): boolean => (align ? align[i] === 'l' : i === 0);
  const line = (cells: readonly string[]): string => cells.map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** An integer from an environment variable, or the default. */
export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 1) throw new Error(`${name}=${v}: expected a positive number`);
  return Math.floor(n);
}
