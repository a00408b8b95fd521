/**
 * The IR's textual form: a golden rendering of a small hand-built graph, and
 * determinism (the same graph built twice prints the same text).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { optimize } from '../../src/ir/passes/index.js';
import { printGraph } from '../../src/ir/printer.js';
import { makeTensor } from '../../src/ir/tensor.js';

const tableData = (bump = 0): number[] => Array.from({ length: 20 }, (_, i) => i / 4 + (i === 7 ? bump : 0));

/** Inputs of three dtypes, scopes (nested and none), int/bool/string/array attributes, a small and a large constant. */
function tiny(bump = 0): Graph {
  const b = new GraphBuilder('tiny');
  const x = b.input('batch.x', 'f32', [2, 3]);
  const ids = b.input('batch.ids', 'i64', [2]);
  const w = b.input('lin.w', 'f32', [3, 4]);
  const h = b.scoped('lin', () => b.matmul(x, w));
  const table = b.constant(makeTensor('f32', [5, 4], tableData(bump)));
  const e = b.scoped('embed', () => b.scoped('token', () => b.gather(table, ids)));
  const y = b.scoped('act', () => b.add(b.relu(h), b.mul(e, b.scalar(0.5))));
  const s = b.reduceSum(y, [1], true);
  const m = b.cast(b.greater(s, b.constant(makeTensor('f32', [2, 1], [0, -1.5]))), 'f32');
  b.output('y', b.transpose(y, [1, 0]));
  b.output('mask', m);
  b.output('ids_out', ids);
  b.output('y_again', y);
  return b.build();
}

const GOLDEN = `graph tiny(
    %0 batch.x: f32[2, 3],
    %1 batch.ids: i64[2],
    %2 lin.w: f32[3, 4],
) {
  %3 = matmul(%0, %2)                                    : f32[2, 4]   # lin
  %4 = constant(value=f32[5, 4]{checksum 4d5e6a90})      : f32[5, 4]
  %5 = gather(%4, %1)                                    : f32[2, 4]   # embed.token
  %6 = relu(%3)                                          : f32[2, 4]   # act
  %7 = constant(value=f32[]{0.5})                        : f32[]   # act
  %8 = mul(%5, %7)                                       : f32[2, 4]   # act
  %9 = add(%6, %8)                                       : f32[2, 4]   # act
  %10 = reduce_sum(%9, axes=[1], keepdims=true)          : f32[2, 1]
  %11 = constant(value=f32[2, 1]{0, -1.5})               : f32[2, 1]
  %12 = greater(%10, %11)                                : bool[2, 1]
  %13 = cast(%12, to="f32")                              : f32[2, 1]
  %14 = transpose(%9, perm=[1, 0])                       : f32[4, 2]
  return y = %14
  return mask = %13
  return ids_out = %1
  return y_again = %9
}
`;

/** FNV-1a (32-bit) over the float64 little-endian bytes, written out independently of the printer. */
function fnv1a(values: readonly number[]): string {
  const view = new DataView(new ArrayBuffer(values.length * 8));
  values.forEach((v, i) => view.setFloat64(i * 8, v, true));
  let h = 0x811c9dc5;
  for (let i = 0; i < view.byteLength; i++) {
    h ^= view.getUint8(i);
    h = Number((BigInt(h) * 0x01000193n) & 0xffffffffn);
  }
  return h.toString(16).padStart(8, '0');
}

describe('printGraph', () => {
  it('prints the golden textual form', () => {
    expect(printGraph(tiny())).toBe(GOLDEN);
  });

  it("prints a large constant's checksum as FNV-1a of its float64 bytes", () => {
    expect(fnv1a(tableData())).toBe('4d5e6a90');
    // One changed element changes the checksum.
    const changed = fnv1a(tableData(1e-9));
    expect(changed).not.toBe('4d5e6a90');
    expect(printGraph(tiny(1e-9))).toBe(GOLDEN.replace('4d5e6a90', changed));
  });

  it('is deterministic: the same graph built twice prints identically', () => {
    const a = tiny();
    const b = tiny();
    expect(a).not.toBe(b);
    expect(printGraph(a)).toBe(printGraph(b));
    expect(printGraph(a)).toBe(printGraph(a));
  });

  it('numbers values densely in order of appearance, also after passes drop nodes', () => {
    const b = new GraphBuilder('dead');
    const x = b.input('x', 'f32', [2]);
    b.exp(x); // dead
    b.sin(x); // dead
    b.output('y', b.neg(x));
    const g = b.build();
    expect(printGraph(g)).toContain('  %3 = neg(%0)');
    const { graph: opt } = optimize(g);
    const text = printGraph(opt);
    expect(text).toBe(
      [
        'graph dead(',
        '    %0 x: f32[2],',
        ') {',
        `${'  %1 = neg(%0)'.padEnd(56)} : f32[2]`,
        '  return y = %1',
        '}',
        '',
      ].join('\n'),
    );
    expect(printGraph(optimize(tiny()).graph)).toBe(printGraph(optimize(tiny()).graph));
  });
});
