import { describe, expect, it } from 'vitest';
import { check, codes, typeOf } from './harness.js';

const LINEAR = `
block Linear(inp: dim, out: dim, bias: bool = true) {
  param w: f32[inp, out] = normal(0.02)
  param b: f32[out] = zeros() if bias
  forward(x: f32[..., inp]) -> f32[..., out] = x @ w + b
}
`;

describe('type inference', () => {
  it('infers matmul, broadcasting and slicing shapes', () => {
    const src = `
fn f(x: f32[B, T, 128], w: f32[128, 64], b: f32[64]) -> f32[B, T - 1, 64] = (x @ w + b)[:, 1:]
fn g(x: f32[B, T, D]) -> f32[B, D] = x[:, -1]
fn h(x: f32[B, H, T, D], y: f32[B, H, D, T]) -> f32[B, H, T, T] = x @ y
fn r(x: f32[B, T, 12]) -> f32[B, T, 3, 4] = reshape(x, [B, T, 3, 12 / 3])
`;
    expect(codes(src)).toEqual([]);
  });

  it('counts parameters of an instantiated block, with and without an optional bias', () => {
    expect(typeOf(LINEAR + 'model m = Linear(128, 64)', 'm')).toContain('8,256 params');
    expect(typeOf(LINEAR + 'model m = Linear(128, 64, bias: false)', 'm')).toContain('8,192 params');
    expect(typeOf(LINEAR + 'model m = Linear(128, 64)', 'm')).toContain('forward(x: f32[..., 128]) -> f32[..., 64]');
  });

  it('reports a symbolic parameter count for a block declaration', () => {
    expect(typeOf(LINEAR, 'Linear')).toContain('inp * out + out params');
  });

  it('names both shapes in a matmul error and points at the operator', () => {
    const result = check(`fn f(x: f32[B, T, 128], w: f32[64, 256]) -> f32[B, T, 256] = x @ w`);
    expect(result.diagnostics).toHaveLength(1);
    const d = result.diagnostics[0]!;
    expect(d.code).toBe('matmul-shape');
    expect(d.message).toBe('matmul: inner dimensions differ (128 vs 64): x is [B, T, 128] but w is [64, 256]');
    expect(d.span.column).toBe(src0Column(`fn f(x: f32[B, T, 128], w: f32[64, 256]) -> f32[B, T, 256] = x @ w`, '@'));
  });

  it('evaluates where clauses at instantiation', () => {
    const src = `
block A(d: dim, heads: dim) where d % heads == 0 {
  forward(x: f32[B, d]) -> f32[B, d] = x
}
model ok = A(128, 4)
model bad = A(130, 4)
`;
    const result = check(src);
    expect(result.diagnostics.map((d) => d.code)).toEqual(['where-violated']);
    expect(result.diagnostics[0]!.message).toBe("A(d: 130, heads: 4) violates 'where d % heads == 0': d % heads is 2");
    expect(result.diagnostics[0]!.span.line).toBe(6);
  });

  it('proves exact division from symbolic arithmetic', () => {
    const src = `
block Heads(d: dim, heads: dim) where d % heads == 0 {
  forward(x: f32[B, T, d]) -> f32[B, T, heads, d / heads] = reshape(x, [B, T, heads, d / heads])
}
`;
    expect(codes(src)).toEqual([]);
  });

  it('unifies call arguments and binds symbols for the return type', () => {
    const src = `
fn first(x: f32[B, T, D]) -> f32[B, D] = x[:, 0]
fn use(y: f32[4, 9, 3]) -> f32[4, 3] = first(y)
fn bad(y: f32[4, 9]) -> f32[4] = first(y)
`;
    const result = check(src);
    expect(result.diagnostics.map((d) => [d.code, d.span.line])).toEqual([['argument-type', 4]]);
    expect(result.diagnostics[0]!.message).toContain('expected f32[B, T, D], got f32[4, 9]');
  });

  it('treats a false optional member as identity', () => {
    expect(codes(LINEAR + 'model m = Linear(4, 4, bias: false)')).toEqual([]);
  });

  it('checks generic functions at each call, with the caller named', () => {
    const src = `
fn twice(x) = x + x
fn a(y: f32[3]) -> f32[3] = twice(y)
fn b(y: f32[3], z: f32[4]) -> f32[4] = twice(y) + z
`;
    const result = check(src);
    expect(result.diagnostics.map((d) => [d.code, d.span.line])).toEqual([['broadcast-shape', 4]]);
  });

  it('recovers: one error does not cascade into more', () => {
    const src = `
fn f(x: f32[B, 3]) -> f32[B, 3] {
  let y = x @ x
  let z = y * 2.0
  let w = relu(z) + y
  w
}
`;
    expect(codes(src).map((c) => c.code)).toEqual(['matmul-shape']);
  });

  it('reports several independent errors in one file', () => {
    const lines = [
      'fn a(x: f32[3], y: f32[4, 2]) -> f32[2] = x @ y',
      'model m = Nope(3)',
      'fn c(x: f32[3], y: i64[3]) -> f32[3] = x + y',
    ];
    expect(codes(lines.join('\n'))).toEqual([
      { code: 'matmul-shape', line: 1, column: src0Column(lines[0]!, '@') },
      { code: 'unknown-name', line: 2, column: src0Column(lines[1]!, 'Nope') },
      { code: 'dtype-mismatch', line: 3, column: src0Column(lines[2]!, '+') },
    ]);
  });
});

describe('data files', () => {
  it('refuses a device file instead of reading it forever', () => {
    const src = 'tokenizer t = chars("ab")\ndataset d = text("/dev/zero", tokenizer: t, block: 8)\ndataset e = jsonl("/dev/zero", format: prompt_completion, tokenizer: t)';
    expect(codes(src)).toEqual([
      { code: 'read-refused', line: 2, column: 18 },
      { code: 'read-refused', line: 3, column: 19 },
    ]);
  });
});

function src0Column(line: string, token: string): number {
  return line.indexOf(token) + 1;
}
