/**
 * The IR's textual form (`ptr ir`), stable enough for golden files:
 *
 *   graph eval(gpt.embed.token.table: f32[54, 128], batch.tokens: i64[16, 64]) {
 *     %7 = gather(%0, %5)  : f32[16, 64, 128]   # embed.token
 *     ...
 *     return loss = %93
 *   }
 *
 * Small constants are printed in full, large ones as a shape and a checksum.
 * With `provenance`, each node line ends with its recipe span and phase
 * (`@ recipe.pt-recipe:12:5 forward`); golden files leave it out.
 */
import { formatProvenance, type AttrValue, type Graph, type Value } from './graph.js';
import type { Tensor } from './tensor.js';

export interface PrintOptions {
  /** Append each node's provenance (recipe span and phase). */
  readonly provenance?: boolean;
}

export function printGraph(graph: Graph, options: PrintOptions = {}): string {
  const ids = new Map<Value, number>();
  const name = (v: Value): string => {
    let n = ids.get(v);
    if (n === undefined) {
      n = ids.size;
      ids.set(v, n);
    }
    return `%${n}`;
  };
  const type = (v: Value): string => `${v.dtype}[${v.shape.join(', ')}]`;
  const lines: string[] = [];
  const params = graph.inputs.map((v) => `${name(v)} ${v.inputName}: ${type(v)}`);
  lines.push(`graph ${graph.name}(`);
  for (const p of params) lines.push(`    ${p},`);
  lines.push(') {');
  for (const n of graph.nodes) {
    const outs = n.outputs.map(name).join(', ');
    const attrs = Object.keys(n.attrs)
      .sort()
      .map((k) => `${k}=${formatAttr(n.attrs[k]!)}`);
    const args = [...n.inputs.map(name), ...attrs].join(', ');
    const head = `  ${outs} = ${n.op}(${args})`;
    const types = n.outputs.map(type).join(', ');
    const origin = options.provenance ? `   @ ${formatProvenance(n.provenance)}` : '';
    lines.push(`${head.padEnd(56)} : ${types}${n.scope ? `   # ${n.scope}` : ''}${origin}`);
  }
  for (const o of graph.outputs) lines.push(`  return ${o.name} = ${name(o.value)}`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function formatAttr(a: AttrValue): string {
  if (typeof a === 'number' || typeof a === 'boolean') return String(a);
  if (typeof a === 'string') return JSON.stringify(a);
  if (Array.isArray(a)) return `[${a.join(', ')}]`;
  const t = a as Tensor;
  if (t.data.length <= 8) return `${t.dtype}[${t.shape.join(', ')}]{${Array.from(t.data).join(', ')}}`;
  return `${t.dtype}[${t.shape.join(', ')}]{checksum ${checksum(t.data)}}`;
}

/** FNV-1a over the float64 bytes: identifies a constant's contents in a golden file. */
function checksum(data: Float64Array): string {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}
