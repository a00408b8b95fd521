/**
 * The IR verifier (src/ir/verify.ts): each invariant broken on purpose in a
 * small graph, with the exact message (it names the stage, the graph and the
 * node), and `optimize` running it under PTR_VERIFY=1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph, Node, Value } from '../../src/ir/graph.js';
import { optimize } from '../../src/ir/passes/index.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { verifyGraph } from '../../src/ir/verify.js';

/** x: f32[2] → y = tanh(x) * 2 (in scope `act`, from r.pt-recipe:4:7) → output y. */
function small(): { g: Graph; x: Value; t: Value; y: Value } {
  const b = new GraphBuilder('small');
  const x = b.input('x', 'f32', [2]);
  const { t, y } = b.at({ file: 'r.pt-recipe', line: 4, column: 7 }, () =>
    b.scoped('act', () => {
      const t = b.tanh(x);
      return { t, y: b.mul(t, b.scalar(2)) };
    }),
  );
  b.output('y', y);
  return { g: b.build(), x, t, y };
}

/** The message verifyGraph throws for `g`, or null. */
function problem(g: Graph): string | null {
  try {
    verifyGraph(g, 'after pass test');
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

const PREFIX = 'IR verifier, after pass test, graph small: ';

describe('verifyGraph', () => {
  it('accepts graphs the builder made, before and after optimize', () => {
    const { g } = small();
    expect(problem(g)).toBeNull();
    expect(problem(optimize(g).graph)).toBeNull();
  });

  it('a node that reads a value computed only later', () => {
    const { g } = small();
    const [tanh, constant, mul] = g.nodes as [Node, Node, Node];
    expect(problem({ ...g, nodes: [mul, tanh, constant] })).toBe(
      `${PREFIX}node 0 mul (in act, at r.pt-recipe:4:7 forward): input 0 (%1) is neither a graph input nor computed by an earlier node`,
    );
  });

  it('an output whose producer is another node (what constant folding used to leave behind)', () => {
    const { g, y } = small();
    const mul = g.nodes[2]!;
    // A constant standing in for the mul but keeping the mul's output value: y.producer is still the mul.
    const folded: Node = { ...mul, op: 'constant', inputs: [], attrs: { value: makeTensor('f32', [2], [1, 2]) } };
    expect(y.producer).toBe(mul);
    expect(problem({ ...g, nodes: [g.nodes[0]!, g.nodes[1]!, folded] })).toBe(
      `${PREFIX}node 2 constant (in act, at r.pt-recipe:4:7 forward): output 0 (%3) names another node (mul (in act, at r.pt-recipe:4:7 forward)) as its producer`,
    );
  });

  it('a recorded type the type rule does not give, and a node the type rule rejects', () => {
    const { g, t } = small();
    const tanh = g.nodes[0]!;
    const outputs: Value[] = [];
    const wrong: Node = { ...tanh, outputs };
    outputs.push({ ...t, shape: [3], producer: wrong });
    expect(problem({ ...g, nodes: [wrong], outputs: [] })).toBe(`${PREFIX}node 0 tanh (in act, at r.pt-recipe:4:7 forward): output 0 (%1) is recorded as f32[3], its type rule gives f32[2]`);
    const bad: Node = { ...g.nodes[2]!, attrs: {}, inputs: [g.nodes[0]!.outputs[0]!] };
    expect(problem({ ...g, nodes: [g.nodes[0]!, bad] })).toMatch(/^IR verifier, after pass test, graph small: node 1 mul \(in act, at r.pt-recipe:4:7 forward\): the type rule rejects the node: mul: expects 2 inputs, got 1/);
  });

  it('names: duplicate inputs, value ids and outputs; outputs not computed or named like another input', () => {
    const { g, x, t, y } = small();
    expect(problem({ ...g, inputs: [x, x] })).toBe(`${PREFIX}two inputs are named x`);
    const clash = { ...x, inputName: 'x2', id: t.id };
    expect(problem({ ...g, inputs: [x, clash] })).toBe(`${PREFIX}node 0 tanh (in act, at r.pt-recipe:4:7 forward): value id %1 is used by two values`);
    expect(problem({ ...g, outputs: [{ name: 'y', value: y }, { name: 'y', value: t }] })).toBe(`${PREFIX}two outputs are named y`);
    expect(problem({ ...g, nodes: g.nodes.slice(0, 2) })).toBe(`${PREFIX}output y (%3) is not computed by the graph`);
    expect(problem({ ...g, outputs: [{ name: 'x', value: y }] })).toBe(`${PREFIX}output x has the name of an input but is another value`);
    // …while passing an input through under its own name is fine.
    expect(problem({ ...g, outputs: [{ name: 'x', value: x }] })).toBeNull();
  });
});

describe('optimize under PTR_VERIFY', () => {
  const saved = process.env['PTR_VERIFY'];
  afterEach(() => {
    if (saved === undefined) delete process.env['PTR_VERIFY'];
    else process.env['PTR_VERIFY'] = saved;
  });

  it('is set for the whole test suite (vitest.config.ts)', () => {
    expect(saved).toBe('1');
  });

  it('checks the graph before the passes, and only when asked', () => {
    const { g } = small();
    const broken = { ...g, nodes: [g.nodes[2]!, g.nodes[0]!, g.nodes[1]!] };
    process.env['PTR_VERIFY'] = '1';
    expect(() => optimize(broken)).toThrow(/^IR verifier, before the passes, graph small: node 0 mul/);
    delete process.env['PTR_VERIFY'];
    // Without the verifier, the passes run on regardless (here CSE's rewriter notices the unknown value).
    expect(() => optimize(broken)).toThrow(/^rewrite cse of graph small, at mul \(in act, at r.pt-recipe:4:7 forward\): value %1 is not in the graph before this point/);
  });
});
