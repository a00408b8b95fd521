/**
 * Common-subexpression elimination: two nodes with the same op, the same
 * inputs and the same attributes compute the same values; keep the first.
 * (Every op is pure; dropout is keyed by its seed input.)
 */
import type { AttrValue, Graph, Value } from '../graph.js';
import { rewriteGraph } from './rewrite.js';

export function eliminateCommonSubexpressions(graph: Graph): Graph {
  // Node keys over the new graph's value ids (unique there), so merges cascade downstream.
  const seen = new Map<string, readonly Value[]>();
  return rewriteGraph(graph, 'cse', (n, rw) => {
    const key = `${n.op}(${n.inputs.map((v) => rw.value(v).id).join(',')})${attrKey(n.attrs)}`;
    const prev = seen.get(key);
    if (prev) return prev;
    const outs = rw.keep(n);
    seen.set(key, outs);
    return outs;
  });
}

/** A number's key: String keeps NaN and ±Infinity apart (JSON.stringify makes them null), and -0 is kept apart from 0 (1/x differs). */
const numKey = (x: number): string => (Object.is(x, -0) ? '-0' : String(x));

function attrKey(attrs: Readonly<Record<string, AttrValue>>): string {
  const keys = Object.keys(attrs).sort();
  return keys
    .map((k) => {
      const v = attrs[k]!;
      if (typeof v === 'object' && v !== null && 'data' in v) return `${k}=${v.dtype}[${v.shape.join(',')}]:${Array.from(v.data, numKey).join(',')}`;
      if (typeof v === 'number') return `${k}=${numKey(v)}`;
      if (Array.isArray(v)) return `${k}=[${v.map(numKey).join(',')}]`;
      return `${k}=${JSON.stringify(v)}`;
    })
    .join(';');
}
