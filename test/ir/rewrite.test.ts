/**
 * The rewriter (src/ir/passes/rewrite.ts), the API passes use to change a
 * graph: the two examples of its JSDoc written out (remove `x * 1`; put new
 * nodes in front of a matmul's weight), what it keeps, re-emits and names,
 * and the mistakes it refuses. Results are checked against the reference
 * evaluator and onnxruntime.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import type { Graph, Node, Value } from '../../src/ir/graph.js';
import { rewriteGraph } from '../../src/ir/passes/rewrite.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import { verifyGraph } from '../../src/ir/verify.js';
import { runOnce } from '../../src/runtime/ort.js';
import { emitModel } from '../../targets/onnx/emit.js';

const f32 = (shape: number[], data: number[]): Tensor => makeTensor('f32', shape, data);
const isOne = (n: Node): boolean => (n.attrs['value'] as Tensor).data.every((v) => v === 1);

/** y = tanh((x * 1) @ w) + 1, with the matmul in scope `proj` from r.pt-recipe:7:3. */
function model(): Graph {
  const b = new GraphBuilder('m');
  const x = b.input('x', 'f32', [2, 3]);
  const w = b.input('w', 'f32', [3, 2]);
  const x1 = b.mul(x, b.scalar(1));
  const h = b.at({ file: 'r.pt-recipe', line: 7, column: 3 }, () => b.scoped('proj', () => b.matmul(x1, w)));
  b.output('y', b.add(b.tanh(h), b.scalar(1)));
  return b.build();
}

const feeds = new Map([
  ['x', f32([2, 3], [0.5, -1, 2, 0.25, 0, -0.75])],
  ['w', f32([3, 2], [1, -0.5, 0.25, 2, -1, 0.125])],
]);

/** y computed by hand: tanh(x @ (w · scale)) + 1. */
function expected(scale: number): number[] {
  const x = feeds.get('x')!.data;
  const w = feeds.get('w')!.data;
  const out: number[] = [];
  for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) out.push(Math.tanh([0, 1, 2].reduce((s, k) => s + x[i * 3 + k]! * w[k * 2 + j]! * scale, 0)) + 1);
  return out;
}

async function expectComputes(g: Graph, want: number[]): Promise<void> {
  verifyGraph(g, 'rewrite.test');
  const ref = Array.from(evaluateGraph(g, feeds).get('y')!.data);
  ref.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 12));
  const ort = Array.from((await runOnce(emitModel(g).bytes, feeds)).get('y')!.data);
  ort.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
}

describe('rewriteGraph', () => {
  it('JSDoc example 1: x * 1 becomes x; the nodes after it are re-emitted on the new input, the rest kept as they were', async () => {
    const g = model();
    const out = rewriteGraph(g, 'mul-one', (n, rw) => {
      const one = n.inputs[1]?.producer;
      if (n.op !== 'mul' || one?.op !== 'constant' || !isOne(one)) return undefined;
      return [rw.value(n.inputs[0]!)];
    });
    expect(out.nodes.map((n) => n.op)).toEqual(['constant', 'matmul', 'tanh', 'constant', 'add']);
    const matmul = out.nodes[1]!;
    // Re-emitted: a new node reading x, whose output keeps the old id and names it as producer.
    const oldMatmul = g.nodes.find((n) => n.op === 'matmul')!;
    expect(matmul).not.toBe(oldMatmul);
    expect(matmul.inputs[0]).toBe(g.inputs[0]);
    expect(matmul.outputs[0]!.id).toBe(oldMatmul.outputs[0]!.id);
    expect(matmul.outputs[0]!.producer).toBe(matmul);
    // …with the scope and provenance of the node it copies.
    expect(matmul.scope).toBe('proj');
    expect(matmul.provenance).toEqual({ span: { file: 'r.pt-recipe', line: 7, column: 3 }, phase: 'forward' });
    // The constant 1 (now unread) is kept as it was: dropping it is DCE's business.
    expect(out.nodes[0]).toBe(g.nodes[0]);
    expect(out.inputs).toEqual(g.inputs);
    await expectComputes(out, expected(1));
  });

  it('JSDoc example 2: new nodes in front of a matmul weight, made with the visited node’s scope and provenance', async () => {
    const g = model();
    const out = rewriteGraph(g, 'scale-weights', (n, rw) => {
      if (n.op !== 'matmul') return undefined;
      const [x, w] = n.inputs.map(rw.value);
      return [rw.b.matmul(x!, rw.b.mul(w!, rw.b.scalar(0.5)))];
    });
    expect(out.nodes.map((n) => n.op)).toEqual(['constant', 'mul', 'constant', 'mul', 'matmul', 'tanh', 'constant', 'add']);
    for (const n of out.nodes.slice(2, 5)) {
      expect(n.scope, n.op).toBe('proj');
      expect(n.provenance.span, n.op).toEqual({ file: 'r.pt-recipe', line: 7, column: 3 });
    }
    // New values get ids no value of the old graph had.
    const oldIds = new Set(g.nodes.flatMap((n) => n.outputs.map((o) => o.id)));
    for (const n of out.nodes.slice(2, 5)) expect(oldIds.has(n.outputs[0]!.id)).toBe(false);
    await expectComputes(out, expected(0.5));
  });

  it('refuses a replacement of another type, a dropped value read later, and keeping a node twice', () => {
    const g = model();
    expect(() => rewriteGraph(g, 'bad-type', (n, rw) => (n.op === 'tanh' ? [rw.b.reduceSum(rw.value(n.inputs[0]!), [1])] : undefined))).toThrow(
      'rewrite bad-type of graph m, at tanh: output 0 (f32[2, 2]) is replaced by a value of another type, f32[2]',
    );
    expect(() => rewriteGraph(g, 'drop', (n) => (n.op === 'matmul' ? 'drop' : undefined))).toThrow(
      'rewrite drop of graph m, at tanh: value %4 is read but its producer matmul (in proj, at r.pt-recipe:7:3 forward) was dropped',
    );
    expect(() =>
      rewriteGraph(g, 'twice', (n, rw) => {
        rw.keep(n);
        rw.keep(n);
        return undefined;
      }),
    ).toThrow('rewrite twice of graph m, at constant: the node was kept twice');
  });

  it('a graph output follows its replacement; an output that is an input stays', () => {
    const b = new GraphBuilder('outs');
    const x = b.input('x', 'f32', [2]);
    const n = b.neg(b.neg(x));
    b.output('n', n);
    b.output('x', x);
    const g = b.build();
    // -(-x) → x
    const out = rewriteGraph(g, 'double-neg', (node, rw): readonly Value[] | undefined => {
      const inner = node.inputs[0]?.producer;
      return node.op === 'neg' && inner?.op === 'neg' ? [rw.value(inner.inputs[0]!)] : undefined;
    });
    expect(out.outputs.map((o) => [o.name, o.value])).toEqual([
      ['n', x],
      ['x', x],
    ]);
    verifyGraph(out, 'rewrite.test');
  });
});
