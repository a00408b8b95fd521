/** The standard pass pipeline, with node counts before and after for `ptr compile` to report. */
import type { Graph } from '../graph.js';
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
  const perPass: { pass: string; nodes: number }[] = [];
  let g = graph;
  const run = (pass: string, f: (g: Graph) => Graph): void => {
    g = f(g);
    perPass.push({ pass, nodes: g.nodes.length });
  };
  run('cse', eliminateCommonSubexpressions);
  run('const-fold', foldConstants);
  run('cse', eliminateCommonSubexpressions);
  run('dce', eliminateDeadCode);
  return { graph: g, report: { graph: graph.name, before: graph.nodes.length, after: g.nodes.length, perPass } };
}
