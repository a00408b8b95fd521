/**
 * The standard pass pipeline, with node counts before and after for `ptr compile`
 * to report. With `PTR_VERIFY=1` (set for the whole test suite) the IR verifier
 * checks the graph before the first pass and after each one.
 */
import type { Graph } from '../graph.js';
import { verifyGraph, verifyRequested } from '../verify.js';
import { foldConstants } from './constfold.js';
import { eliminateCommonSubexpressions } from './cse.js';
import { eliminateDeadCode } from './dce.js';

export interface PassReport {
  readonly graph: string;
  readonly before: number;
  readonly after: number;
  readonly perPass: readonly { readonly pass: string; readonly nodes: number }[];
}

export function optimize(graph: Graph): { graph: Graph; report: PassReport } {
  const verify = verifyRequested();
  if (verify) verifyGraph(graph, 'before the passes');
  const perPass: { pass: string; nodes: number }[] = [];
  let g = graph;
  const run = (pass: string, f: (g: Graph) => Graph): void => {
    g = f(g);
    if (verify) verifyGraph(g, `after pass ${pass} (${perPass.length + 1} of the pipeline)`);
    perPass.push({ pass, nodes: g.nodes.length });
  };
  run('cse', eliminateCommonSubexpressions);
  run('const-fold', foldConstants);
  run('cse', eliminateCommonSubexpressions);
  run('dce', eliminateDeadCode);
  return { graph: g, report: { graph: graph.name, before: graph.nodes.length, after: g.nodes.length, perPass } };
}
