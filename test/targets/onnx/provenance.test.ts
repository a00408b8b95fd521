/**
 * Provenance: every ONNX node of a compiled train step says, in its
 * doc_string, which recipe expression it came from and whether it is forward,
 * backward or optimizer work — so an onnxruntime error naming a node leads
 * back to the recipe line. The recipe (test/fixtures/ir/provenance.pt-recipe)
 * writes its model's forward itself, so the expected line and column are read
 * from the file, not assumed.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../../src/check/index.js';
import { GraphBuilder } from '../../../src/ir/builder.js';
import type { Graph } from '../../../src/ir/graph.js';
import { lowerTrainStage } from '../../../src/ir/lower/trainStage.js';
import { optimize } from '../../../src/ir/passes/index.js';
import { printGraph } from '../../../src/ir/printer.js';
import { makeTensor, sizeOf, type Tensor } from '../../../src/ir/tensor.js';
import { runOnce } from '../../../src/runtime/ort.js';
import { emitModel } from '../../../targets/onnx/emit.js';
import { onnx } from '../../../targets/onnx/proto.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const RECIPE = join(HERE, '..', '..', 'fixtures', 'ir', 'provenance.pt-recipe');
const LOSSES = join(HERE, '..', '..', '..', 'stdlib', 'std', 'losses.pt-recipe');

/** `file:line:col` of the first occurrence of `needle` in a file, as spans name it (relative to the working directory). */
function locate(file: string, needle: string): string {
  const lines = readFileSync(file, 'utf8').split('\n');
  const line = lines.findIndex((l) => l.includes(needle) && !l.trimStart().startsWith('#'));
  expect(line, `${needle} in ${file}`).toBeGreaterThanOrEqual(0);
  return `${relative(process.cwd(), file)}:${line + 1}:${lines[line]!.indexOf(needle) + 1}`;
}

function trainStep(): Graph {
  // Spans name files as the command line did (here relative), stdlib files relative to the working directory.
  const checked = checkFiles([relative(process.cwd(), RECIPE)]);
  expect(checked.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const plan = lowerTrainStage(checked.entryModules[0]!, null);
  return optimize(plan.graphs['train_step']!).graph;
}

/** Feeds for every input: token ids in range, small floats elsewhere, step 1. */
function feedsFor(graph: Graph): Map<string, Tensor> {
  return new Map(
    graph.inputs.map((v) => {
      const n = sizeOf(v.shape);
      const data = v.dtype === 'i64' ? Array.from({ length: n }, (_, i) => (i * 7) % 20) : Array.from({ length: n }, (_, i) => (v.inputName === 'step' ? 1 : 0.05 * Math.sin(i + 1)));
      return [v.inputName!, makeTensor(v.dtype, v.shape, data)];
    }),
  );
}

describe('provenance in the ONNX doc_string', () => {
  it('a train step: the forward matmul, its gradient, a stdlib loss and the optimizer each name where they came from', async () => {
    const graph = trainStep();
    const bytes = emitModel(graph).bytes;
    const nodes = onnx.ModelProto.decode(bytes).graph!.node!.map((n) => ({ op: n.opType ?? '', doc: n.docString ?? '' }));
    const docsOf = (op: string): string[] => [...new Set(nodes.filter((n) => n.op === op).map((n) => n.doc))].sort();

    // `gather(table, ids) @ out` on the forward line: the binary expression starts at `gather`.
    const forwardLine = locate(RECIPE, 'gather(table, ids) @ out');
    // The forward matmul, and the two matmuls of its gradient (dx = g·wᵀ, dw = xᵀ·g).
    expect(docsOf('MatMul')).toEqual([`${forwardLine} backward`, `${forwardLine} forward`]);
    expect(nodes.filter((n) => n.op === 'MatMul' && n.doc.endsWith('backward')).length).toBe(2);
    // The lookup's gradient is a scatter-add of rows, marked backward with the lookup's span.
    expect(docsOf('Gather')).toContain(`${forwardLine} forward`);
    expect(docsOf('ScatterND')).toEqual([`${forwardLine} backward`]);
    // The loss comes from std.losses: next_token's body is `cross_entropy(...)`.
    const lossLine = locate(LOSSES, 'cross_entropy(logits[:, :-1], tokens[:, 1:])');
    expect(docsOf('SoftmaxCrossEntropyLoss')).toEqual([`${lossLine} forward`]);
    expect(docsOf('Softmax')).toEqual([`${lossLine} backward`]);
    // `logits[:, :-1]` is a slice at its own column of that line.
    expect(docsOf('Slice')).toContain(`${locate(LOSSES, 'logits[:, :-1]')} forward`);
    // AdamW's square root of v is optimizer work; the only other Sqrt is the gradient norm (also optimizer).
    expect(docsOf('Sqrt')).toEqual(['optimizer']);
    // Every node has a doc_string, of one of the three phases.
    for (const n of nodes) expect(n.doc, n.op).toMatch(/(^| )(forward|backward|optimizer)$/);
    // The model runs, and a second emission gives the same bytes.
    const out = await runOnce(bytes, feedsFor(graph));
    expect(Number.isFinite(out.get('loss')!.data[0])).toBe(true);
    expect(Buffer.from(emitModel(trainStep()).bytes).equals(Buffer.from(bytes))).toBe(true);
  });

  it('a hand-built graph: nodes outside any recipe expression say only their phase; ptr ir prints provenance only when asked', async () => {
    const b = new GraphBuilder('hand');
    const x = b.input('x', 'f32', [2]);
    const span = { file: 'r.pt-recipe', line: 3, column: 9 };
    const y = b.at(span, () => b.tanh(x));
    const z = b.inPhase('backward', () => b.neg(y));
    b.output('z', z);
    const g = b.build();
    expect(g.nodes.map((n) => n.provenance)).toEqual([
      { span, phase: 'forward' },
      { span: null, phase: 'backward' },
    ]);
    const bytes = emitModel(g).bytes;
    expect(onnx.ModelProto.decode(bytes).graph!.node!.map((n) => n.docString)).toEqual(['r.pt-recipe:3:9 forward', 'backward']);
    const out = await runOnce(bytes, new Map([['x', makeTensor('f32', [2], [0.5, -1])]]));
    expect(Array.from(out.get('z')!.data)).toEqual([Math.fround(-Math.tanh(0.5)), Math.fround(-Math.tanh(-1))]);
    expect(printGraph(g)).not.toContain('@');
    expect(printGraph(g, { provenance: true })).toContain('   @ r.pt-recipe:3:9 forward');
    expect(printGraph(g, { provenance: true }).split('\n').filter((l) => l.endsWith('@ backward'))).toHaveLength(1);
    // A type error while building names the scope and the recipe span.
    expect(() => b.at(span, () => b.scoped('proj', () => b.matmul(x, b.input('w', 'f32', [3, 4]))))).toThrow(/^matmul: .* \(in proj, at r\.pt-recipe:3:9 forward\)$/);
  });
});
