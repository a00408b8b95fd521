/**
 * The graph passes: CSE, DCE, constant folding and the `optimize` pipeline.
 * Every result is checked with the IR verifier (SSA order, producers, types
 * re-inferred by the op table), and semantics are checked by running the
 * graph before and after through the reference evaluator and through ONNX.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import type { Graph, Node, Value } from '../../src/ir/graph.js';
import { foldConstants } from '../../src/ir/passes/constfold.js';
import { eliminateCommonSubexpressions } from '../../src/ir/passes/cse.js';
import { eliminateDeadCode } from '../../src/ir/passes/dce.js';
import { optimize } from '../../src/ir/passes/index.js';
import { makeTensor, sameShape, type Tensor } from '../../src/ir/tensor.js';
import { verifyGraph } from '../../src/ir/verify.js';
import { runOnce } from '../../src/runtime/ort.js';
import { Prng } from '../../src/runtime/prng.js';
import { emitModel } from '../../targets/onnx/emit.js';

// ------------------------------------------------------------------ helpers

/** The IR verifier (src/ir/verify.ts); `optimize` also runs it after every pass, as PTR_VERIFY=1 in the test config asks. */
const verify = (graph: Graph): void => verifyGraph(graph, 'in passes.test');

const f32 = (shape: number[], data: number[]): Tensor => makeTensor('f32', shape, data);
const ops = (g: Graph): string[] => g.nodes.map((n) => n.op);
const count = (g: Graph, op: string): number => g.nodes.filter((n) => n.op === op).length;

function expectSameTensors(a: Map<string, Tensor>, b: Map<string, Tensor>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [k, t] of a) {
    const u = b.get(k)!;
    expect(u.dtype, k).toBe(t.dtype);
    expect(u.shape, k).toEqual(t.shape);
    expect(Array.from(u.data), k).toEqual(Array.from(t.data));
  }
}

/** Worst |a − b| / max(1, |b|) over every output (NaN must match NaN, infinities exactly). */
function worstDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): number {
  let worst = 0;
  for (const [k, t] of b) {
    const u = a.get(k);
    expect(u, `output ${k}`).toBeDefined();
    expect(u!.shape, k).toEqual(t.shape);
    t.data.forEach((e, i) => {
      const x = u!.data[i]!;
      if (!Number.isFinite(e) || !Number.isFinite(x)) expect(x, `${k}[${i}]`).toBe(e);
      else worst = Math.max(worst, Math.abs(x - e) / Math.max(1, Math.abs(e)));
    });
  }
  return worst;
}

// ------------------------------------------------------------------ CSE

describe('CSE', () => {
  it('merges a node repeated with the same op, inputs and attributes, and nodes downstream of it', () => {
    const b = new GraphBuilder('cse');
    const x = b.input('x', 'f32', [2, 3]);
    const y = b.input('y', 'f32', [2, 3]);
    const s1 = b.add(x, y);
    const s2 = b.add(x, y); // same as s1
    const r1 = b.reduceSum(s1, [1]);
    const r2 = b.reduceSum(s2, [1]); // same once s2 → s1
    b.output('a', r1);
    b.output('b', r2);
    const g = b.build();
    const out = eliminateCommonSubexpressions(g);
    verify(out);
    expect(ops(out)).toEqual(['add', 'reduce_sum']);
    expect(out.outputs.map((o) => o.value)).toEqual([r1, r1]);
    expect(out.nodes[0]!.outputs[0]).toBe(s1); // the first occurrence is the one kept
  });

  it('keeps nodes that differ in op, input order, or attributes', () => {
    const b = new GraphBuilder('cse_diff');
    const x = b.input('x', 'f32', [2, 3]);
    const y = b.input('y', 'f32', [2, 3]);
    b.output('o1', b.sub(x, y));
    b.output('o2', b.sub(y, x)); // inputs swapped
    b.output('o3', b.mul(x, y)); // other op
    b.output('o4', b.reduceSum(x, [0]));
    b.output('o5', b.reduceSum(x, [1])); // other axes
    b.output('o6', b.reduceSum(x, [0], true)); // other keepdims
    b.output('o7', b.one('softmax', [x], { axis: 1 }));
    b.output('o8', b.one('softmax', [x], { axis: 0 }));
    const g = b.build();
    const out = eliminateCommonSubexpressions(g);
    verify(out);
    expect(out.nodes.length).toBe(g.nodes.length);
  });

  it('merges equal constant tensors (same dtype, shape and data), keeps different ones', () => {
    const b = new GraphBuilder('cse_const');
    const x = b.input('x', 'f32', [3]);
    const c1 = b.constant(f32([3], [1, 2, 3]));
    const c2 = b.constant(f32([3], [1, 2, 3])); // equal to c1
    const c3 = b.constant(f32([3], [1, 2, 4])); // other data
    const c4 = b.constant(f32([1, 3], [1, 2, 3])); // other shape
    const c5 = b.constant(makeTensor('i64', [3], [1, 2, 3])); // other dtype
    const m1 = b.mul(x, c1);
    const m2 = b.mul(x, c2); // equal to m1 once c2 → c1
    const m3 = b.mul(x, c3);
    b.output('m1', m1);
    b.output('m2', m2);
    b.output('m3', m3);
    b.output('m4', b.mul(x, c4));
    b.output('c5', c5);
    const g = b.build();
    const out = eliminateCommonSubexpressions(g);
    verify(out);
    expect(count(g, 'constant')).toBe(5);
    expect(count(out, 'constant')).toBe(4);
    expect(count(out, 'mul')).toBe(3);
    expect(out.outputs.find((o) => o.name === 'm2')!.value).toBe(m1);
    const feeds = new Map([['x', f32([3], [0.5, -1, 2])]]);
    expectSameTensors(evaluateGraph(out, feeds), evaluateGraph(g, feeds));
    expect(Array.from(evaluateGraph(out, feeds).get('m3')!.data)).toEqual([0.5, -2, 8]);
  });

  it('keeps a constant 0 and a constant -0 apart (1/x tells them apart)', async () => {
    const b = new GraphBuilder('cse_zero');
    const x = b.input('x', 'f32', [2]);
    b.output('pos', b.add(x, b.reciprocal(b.scalar(0))));
    b.output('neg', b.add(x, b.reciprocal(b.scalar(-0))));
    const g = b.build();
    const feeds = new Map([['x', f32([2], [1, 2])]]);
    const cse = eliminateCommonSubexpressions(g);
    expect(cse.nodes.length).toBe(g.nodes.length);
    for (const opt of [cse, optimize(g).graph]) {
      const r = evaluateGraph(opt, feeds);
      expect(Array.from(r.get('pos')!.data)).toEqual([Infinity, Infinity]);
      expect(Array.from(r.get('neg')!.data)).toEqual([-Infinity, -Infinity]);
      const o = await runOnce(emitModel(opt).bytes, feeds);
      expect(Array.from(o.get('pos')!.data)).toEqual([Infinity, Infinity]);
      expect(Array.from(o.get('neg')!.data)).toEqual([-Infinity, -Infinity]);
    }
  });

  it('merging cascades along a repeated chain', () => {
    const b = new GraphBuilder('cse_chain');
    const x = b.input('x', 'f32', [4]);
    const chain = (): Value => b.tanh(b.mul(b.exp(x), b.scalar(0.5)));
    const a = chain();
    const c = chain();
    b.output('s', b.add(a, c));
    const g = b.build();
    const out = eliminateCommonSubexpressions(g);
    verify(out);
    // exp, constant, mul, tanh, add: the second chain (4 nodes, constant included) is gone.
    expect(ops(out)).toEqual(['exp', 'constant', 'mul', 'tanh', 'add']);
    const add = out.nodes[4]!;
    expect(add.inputs[0]).toBe(add.inputs[1]);
  });
});

// ------------------------------------------------------------------ DCE

describe('DCE', () => {
  it('removes nodes that do not reach an output, keeps every node that does', () => {
    const b = new GraphBuilder('dce');
    const x = b.input('x', 'f32', [2, 2]);
    const unused = b.input('unused', 'f32', [2]);
    const live1 = b.exp(x);
    const dead1 = b.sin(x); // dead chain: sin → cos → mul
    const dead2 = b.cos(dead1);
    b.mul(dead2, live1);
    b.neg(unused); // reads an input nobody else reads
    const live2 = b.matmul(live1, x);
    const live3 = b.add(live2, b.scalar(1)); // constant reaches the output
    b.scalar(7); // dead constant
    b.output('y', live3);
    b.output('z', live1);
    const g = b.build();
    const out = eliminateDeadCode(g);
    verify(out);
    expect(g.nodes.length).toBe(9);
    expect(ops(out)).toEqual(['exp', 'matmul', 'constant', 'add']);
    // Graph inputs are the interface: DCE keeps them even when unread.
    expect(out.inputs.map((v) => v.inputName)).toEqual(['x', 'unused']);
    const feeds = new Map([
      ['x', f32([2, 2], [0.1, 0.2, -0.3, 0.4])],
      ['unused', f32([2], [0, 0])],
    ]);
    expectSameTensors(evaluateGraph(out, feeds), evaluateGraph(g, feeds));
  });

  it('keeps everything when everything is live, and is idempotent', () => {
    const b = new GraphBuilder('dce_live');
    const x = b.input('x', 'f32', [3]);
    const a = b.sigmoid(x);
    const c = b.mul(a, x);
    b.output('a', a);
    b.output('c', c);
    const g = b.build();
    const out = eliminateDeadCode(g);
    expect(out.nodes).toEqual(g.nodes);
    expect(eliminateDeadCode(out).nodes).toEqual(out.nodes);
  });

  it('an output that is a graph input keeps no node alive', () => {
    const b = new GraphBuilder('dce_input');
    const x = b.input('x', 'f32', [2, 3]);
    b.relu(x);
    b.output('x_again', x);
    const out = eliminateDeadCode(b.build());
    verify(out);
    expect(out.nodes).toEqual([]);
    expect(out.outputs[0]!.value).toBe(x);
  });
});

// ------------------------------------------------------------------ constant folding

describe('constant folding', () => {
  it('turns an all-constant subgraph into constants and leaves the rest', () => {
    const b = new GraphBuilder('fold');
    const x = b.input('x', 'f32', [3]);
    const c = b.add(b.scalar(2), b.mul(b.scalar(3), b.constant(f32([3], [1, 2, 3])))); // 2 + 3·[1,2,3]
    const y = b.mul(x, c);
    b.output('y', y);
    const g = b.build();
    const folded = foldConstants(g);
    verify(folded);
    // mul and add of constants become constants (originals stay until DCE); the mul reading x stays.
    expect(ops(folded)).toEqual(['constant', 'constant', 'constant', 'constant', 'constant', 'mul']);
    // The mul is re-emitted on the folded constant (producers stay right: the verifier checks it).
    const mulNode = folded.outputs[0]!.value.producer!;
    expect(mulNode.op).toBe('mul');
    expect(mulNode.inputs[0]).toBe(x);
    expect(mulNode.outputs[0]!.id).toBe(y.id);
    const cNode = mulNode.inputs[1]!.producer!;
    expect(cNode.op).toBe('constant');
    expect(cNode.outputs[0]).not.toBe(c);
    expect(Array.from((cNode.attrs['value'] as Tensor).data)).toEqual([5, 8, 11]);
    const { graph: opt } = optimize(g);
    verify(opt);
    expect(ops(opt)).toEqual(['constant', 'mul']);
    const feeds = new Map([['x', f32([3], [1, -1, 0.5])]]);
    expect(Array.from(evaluateGraph(opt, feeds).get('y')!.data)).toEqual([5, -8, 5.5]);
  });

  it('folds integer and boolean results with their dtype', async () => {
    const b = new GraphBuilder('fold_types');
    const x = b.input('x', 'f32', [4]);
    const idx = b.cast(b.constant(f32([4], [0, 1.0, 2, 3])), 'i64');
    const mask = b.less(b.constant(f32([4], [0, 1, 2, 3])), b.scalar(2)); // [T, T, F, F]
    b.output('y', b.where(mask, x, b.neg(x)));
    b.output('i', b.add(idx, idx));
    const g = b.build();
    const { graph: opt } = optimize(g);
    verify(opt);
    const consts = opt.nodes.filter((n) => n.op === 'constant').map((n) => (n.attrs['value'] as Tensor).dtype);
    expect(consts.sort()).toEqual(['bool', 'i64']);
    expect(ops(opt).sort()).toEqual(['constant', 'constant', 'neg', 'where']);
    const feeds = new Map([['x', f32([4], [1, 2, 3, 4])]]);
    for (const r of [evaluateGraph(opt, feeds), await runOnce(emitModel(opt).bytes, feeds)]) {
      expect(Array.from(r.get('y')!.data)).toEqual([1, 2, -3, -4]);
      expect(r.get('i')!.dtype).toBe('i64');
      expect(Array.from(r.get('i')!.data)).toEqual([0, 2, 4, 6]);
    }
  });

  it('folds results up to 4096 elements and leaves bigger ones alone', () => {
    const b = new GraphBuilder('fold_big');
    const x = b.input('x', 'f32', []);
    const small = b.expand(b.reshape(b.scalar(1.5), [1, 1]), [64, 64]); // 4096 elements: folded
    const big = b.expand(b.reshape(b.scalar(2.5), [1, 1]), [65, 64]); // 4160 elements: not folded
    b.output('small', b.mul(small, x));
    b.output('big', b.mul(big, x));
    const g = b.build();
    const folded = foldConstants(g);
    verify(folded);
    // What each output's mul reads in the folded graph.
    const operand = (name: string): Node => folded.outputs.find((o) => o.name === name)!.value.producer!.inputs[0]!.producer!;
    expect(operand('small').op).toBe('constant');
    expect(operand('big').op).toBe('expand');
    expect(operand('big').outputs[0]!.id).toBe(big.id);
    // The reshape feeding the big expand is small, so it is folded.
    expect(operand('big').inputs[0]!.producer!.op).toBe('constant');
    const { graph: opt, report } = optimize(g);
    verify(opt);
    expect(ops(opt)).toEqual(['constant', 'constant', 'expand', 'mul', 'mul']);
    expect(report.before).toBe(g.nodes.length);
    expect(report.after).toBe(opt.nodes.length);
    const r = evaluateGraph(opt, new Map([['x', makeTensor('f32', [], [2])]]));
    expect(r.get('small')!.data.every((v) => v === 3)).toBe(true);
    expect(r.get('big')!.data.every((v) => v === 5)).toBe(true);
    expect(r.get('big')!.data.length).toBe(65 * 64);
  });

  it('folds nothing when no node has only constant inputs', () => {
    const b = new GraphBuilder('fold_none');
    const x = b.input('x', 'f32', [2]);
    b.output('y', b.exp(b.add(x, b.scalar(1))));
    const g = b.build();
    expect(foldConstants(g).nodes).toEqual(g.nodes);
  });
});

// ------------------------------------------------------------------ optimize preserves semantics

/**
 * A random graph over inputs x, y: f32[2, 3] and z: f32[3]: elementwise ops, broadcasts,
 * reductions, matmul, constants (some repeated, some all-constant chains), nodes
 * deliberately repeated (for CSE), dead nodes (for DCE), and outputs that may repeat a
 * value or pass an input through.
 */
function randomGraph(seed: number): Graph {
  const prng = new Prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[prng.int(xs.length)]!;
  const b = new GraphBuilder(`random${seed}`);
  const m: Value[] = [b.input('x', 'f32', [2, 3]), b.input('y', 'f32', [2, 3])]; // [2, 3] values
  const v: Value[] = [b.input('z', 'f32', [3])]; // [3] values
  const s: Value[] = []; // scalars
  const constants = [0.5, 1, 2, -1.5];
  const addScalar = (): Value => {
    const c = b.scalar(pick(constants));
    s.push(c);
    return c;
  };
  addScalar();
  // An all-constant chain: foldable.
  s.push(b.mul(b.add(addScalar(), addScalar()), addScalar()));
  v.push(b.tanh(b.constant(f32([3], [0.3, -0.2, 0.9]))));
  const unary = ['neg', 'tanh', 'sigmoid', 'sin', 'cos', 'abs', 'relu', 'softplus'] as const;
  const binary = ['add', 'sub', 'mul', 'maximum', 'minimum'] as const;
  const steps = 12 + prng.int(12);
  const all = (): Value[] => [...m, ...v, ...s];
  const place = (x: Value): void => {
    if (x.shape.length === 2 && !sameShape(x.shape, [2, 3])) return; // a repeated matmul or transpose: left unused
    if (x.shape.length === 2) m.push(x);
    else if (x.shape.length === 1) v.push(x);
    else s.push(x);
  };
  for (let i = 0; i < steps; i++) {
    const r = prng.uniform();
    if (r < 0.3) place(b.one(pick(unary), [pick(all())]));
    else if (r < 0.6) {
      // Broadcasting binary op: [2,3] with any, [3] with [3] or scalar, scalars together.
      const a = pick(all());
      const other = a.shape.length === 2 ? pick(all()) : a.shape.length === 1 ? pick([...v, ...s]) : pick(s);
      place(b.one(pick(binary), prng.uniform() < 0.5 ? [a, other] : [other, a]));
    } else if (r < 0.7) place(b.div(pick(all()), b.add(b.abs(pick(all())), b.scalar(1.5)))); // denominator ≥ 1.5
    else if (r < 0.78) place(b.reduceSum(pick(m), [0])); // [2, 3] → [3]
    else if (r < 0.84) place(b.reduceMean(pick(m), [0, 1]));
    else if (r < 0.9) {
      // [2,3] @ [3,2] → [2,2], reduced to a scalar.
      const p = b.matmul(pick(m), b.transpose(pick(m), [1, 0]));
      place(b.reduceMax(p, [0, 1]));
    } else if (r < 0.95) {
      // A repeat of an earlier node with the same inputs: CSE must merge it.
      const prior = b.build().nodes.filter((n) => n.op !== 'constant');
      if (prior.length) {
        const n = pick(prior);
        b.emit(n.op, n.inputs, n.attrs).forEach(place);
      }
    } else b.exp(pick(all())); // dead
  }
  // Most values stay live: one output adds up every [2, 3], [3] and scalar value made (broadcast to [2, 3]).
  const made = [...m.slice(2), ...v.slice(1), ...s];
  b.output('total', made.reduce((acc, x) => b.add(acc, b.mul(x, b.scalar(0.25))), m[0]!));
  const outs = 1 + prng.int(3);
  const cands = made;
  for (let i = 0; i < outs; i++) b.output(`out${i}`, pick(cands));
  if (prng.uniform() < 0.3) b.output('passthrough', m[0]!);
  if (prng.uniform() < 0.5) b.output('again', b.build().outputs[0]!.value); // one value under two names
  return b.build();
}

describe('optimize', () => {
  it('hand-built graph: node counts per pass and identical results', async () => {
    const b = new GraphBuilder('hand');
    const x = b.input('x', 'f32', [2, 3]);
    const w = b.input('w', 'f32', [3, 3]);
    const scale = b.mul(b.scalar(0.5), b.scalar(4)); // folds to 2
    const h1 = b.matmul(x, w);
    const h2 = b.matmul(x, w); // CSE
    const a = b.mul(b.tanh(h1), scale);
    const c = b.mul(b.tanh(h2), b.scalar(2)); // equal to a after folding scale to 2 and the second CSE
    b.sin(a); // dead
    b.output('y', b.add(a, c));
    b.output('sum', b.reduceSum(c, [0, 1]));
    const g = b.build();
    const { graph: opt, report } = optimize(g);
    verify(opt);
    expect(report.before).toBe(13);
    expect(report.perPass).toEqual([
      { pass: 'cse', nodes: 11 }, // the second matmul, then the second tanh reading it
      { pass: 'const-fold', nodes: 11 }, // 0.5·4 becomes a constant 2 (its inputs stay for DCE)
      { pass: 'cse', nodes: 9 }, // the two constants 2 merge, then the two tanh·2
      { pass: 'dce', nodes: 6 }, // the constants 0.5 and 4, and sin
    ]);
    expect(report.after).toBe(6);
    expect(ops(opt)).toEqual(['constant', 'matmul', 'tanh', 'mul', 'add', 'reduce_sum']);
    const feeds = new Map([
      ['x', f32([2, 3], [0.1, -0.2, 0.3, 0.4, 0.5, -0.6])],
      ['w', f32([3, 3], [1, 0, -1, 0.5, 0.25, 2, -0.75, 1.5, 0])],
    ]);
    const before = evaluateGraph(g, feeds);
    expectSameTensors(evaluateGraph(opt, feeds), before);
    // Independently: y = 4·tanh(x·w).
    const xw = [0, 1].flatMap((i) => [0, 1, 2].map((j) => [0, 1, 2].reduce((acc, k) => acc + feeds.get('x')!.data[i * 3 + k]! * feeds.get('w')!.data[k * 3 + j]!, 0)));
    expect(worstDiff(before, new Map([['y', f32([2, 3], xw.map((t) => 4 * Math.tanh(t)))], ['sum', f32([], [xw.reduce((a2, t) => a2 + 2 * Math.tanh(t), 0)])]]))).toBeLessThan(1e-14);
    const o1 = await runOnce(emitModel(g).bytes, feeds);
    const o2 = await runOnce(emitModel(opt).bytes, feeds);
    expect(worstDiff(o2, o1)).toBeLessThanOrEqual(1e-6);
    expect(worstDiff(o1, before)).toBeLessThanOrEqual(1e-5);
  });

  it('random graphs: same outputs before and after (evaluator exactly, ONNX to 1e-5), both ONNX models run', async () => {
    let before = 0;
    let after = 0;
    const counts: string[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      const g = randomGraph(seed);
      const { graph: opt, report } = optimize(g);
      verify(opt);
      for (const step of [eliminateCommonSubexpressions, foldConstants, eliminateDeadCode]) verify(step(g));
      expect(report.before).toBe(g.nodes.length);
      expect(report.after).toBe(opt.nodes.length);
      expect(report.perPass.at(-1)!.nodes).toBe(opt.nodes.length);
      expect(opt.nodes.length).toBeLessThanOrEqual(g.nodes.length);
      // optimize is idempotent up to node counts.
      expect(optimize(opt).graph.nodes.length).toBe(opt.nodes.length);
      before += g.nodes.length;
      after += opt.nodes.length;
      counts.push(`${g.nodes.length}→${opt.nodes.length}`);
      const prng = new Prng(1000 + seed);
      const feeds = new Map<string, Tensor>(
        g.inputs.map((v) => [v.inputName!, makeTensor('f32', v.shape, Array.from({ length: v.shape.reduce((a, d) => a * d, 1) }, () => prng.normal()))]),
      );
      const refBefore = evaluateGraph(g, feeds);
      const refAfter = evaluateGraph(opt, feeds);
      expectSameTensors(refAfter, refBefore);
      const ortBefore = await runOnce(emitModel(g).bytes, feeds);
      const ortAfter = await runOnce(emitModel(opt).bytes, feeds);
      expect([...ortAfter.keys()].sort()).toEqual(g.outputs.map((o) => o.name).sort());
      expect(worstDiff(ortAfter, ortBefore), `seed ${seed}`).toBeLessThanOrEqual(1e-5);
      expect(worstDiff(ortBefore, refBefore), `seed ${seed}: ONNX vs reference`).toBeLessThanOrEqual(1e-4);
    }
    // Every random graph has a foldable chain and dead constants, so the passes must shrink the total.
    expect(after).toBeLessThan(before);
    // eslint-disable-next-line no-console
    console.log(`optimize on 40 random graphs: ${before} → ${after} nodes (${counts.join(' ')})`);
  });
});
