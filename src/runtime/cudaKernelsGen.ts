/**
 * Reads onnxruntime's docs/OperatorKernels.md (the table of every kernel each
 * execution provider registers, generated in onnxruntime by
 * tools/python/gen_opkernel_doc.py) and writes the CUDA provider's ai.onnx
 * kernels as a TypeScript table, src/runtime/cudaKernels.ts, which the CUDA
 * check (cudaCheck.ts) reads. No network: give it a local copy.
 *
 *   npm run build && node dist/src/runtime/cudaKernelsGen.js PATH/TO/OperatorKernels.md COMMIT > src/runtime/cudaKernels.ts
 *
 * The committed table was generated from test/fixtures/ort-cuda/OperatorKernels-cuda-excerpt.md
 * (the rows of the ops pt-recipe emits; a test checks the two agree). With the
 * whole file it lists every CUDA kernel.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** One formal input or output of an op's signature: a type variable (`T`) or a fixed type (`int64`). */
export interface KernelParam {
  readonly name: string;
  readonly type: { readonly variable: string } | { readonly fixed: string };
}

/** The kernels of one op for a range of opset versions, with the tensor types each type variable may take. */
export interface KernelRange {
  readonly since: number;
  /** Last opset version covered; null: every later one. */
  readonly until: number | null;
  readonly types: Readonly<Record<string, readonly string[]>>;
}

export interface OpKernels {
  readonly inputs: readonly KernelParam[];
  readonly outputs: readonly KernelParam[];
  readonly ranges: readonly KernelRange[];
}

/** What a table was generated from. */
export interface KernelSource {
  readonly file: string;
  readonly commit: string;
}

const HEADER = (provider: string): string => `## Operators implemented by ${provider}`;

/**
 * The ai.onnx kernels of `provider` in an OperatorKernels.md text, by op type.
 * Throws naming the line when a row does not have the expected form.
 */
export function parseOperatorKernels(md: string, provider = 'CUDAExecutionProvider'): Map<string, OpKernels> {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => l.trim() === HEADER(provider));
  if (start < 0) throw new Error(`no '${HEADER(provider)}' section`);
  const out = new Map<string, { inputs: KernelParam[]; outputs: KernelParam[]; ranges: KernelRange[] }>();
  let domain: string | null = null;
  let current: { inputs: KernelParam[]; outputs: KernelParam[]; ranges: KernelRange[] } | null = null;
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.startsWith('## ')) break;
    const domainMatch = /^\|\*\*Operator Domain:\*\* \*([^*]+)\*/.exec(line);
    if (domainMatch) {
      domain = domainMatch[1]!;
      continue;
    }
    if (domain !== 'ai.onnx' || !line.startsWith('|') || line.startsWith('|--') || line.startsWith('| Op Name') || /^\|\s*\|$/.test(line)) continue;
    const cells = line.slice(1, -1).split('|');
    if (cells.length !== 4) throw new Error(`line ${i + 1}: expected 4 cells, found ${cells.length}: ${line.slice(0, 80)}`);
    const [op, params, version, types] = cells as [string, string, string, string];
    if (op !== '') {
      current = { ...parseParams(params, i + 1), ranges: [] };
      out.set(op, current);
    }
    if (!current) throw new Error(`line ${i + 1}: a version row before any op`);
    current.ranges.push({ ...parseVersion(version, i + 1), types: parseTypes(types) });
  }
  return out;
}

/** The first signature of a Parameters cell (`*in* A:**T**<br> *out* C:**T**`; later `or` variants are older forms). */
function parseParams(cell: string, line: number): { inputs: KernelParam[]; outputs: KernelParam[] } {
  const inputs: KernelParam[] = [];
  const outputs: KernelParam[] = [];
  const first = cell.split('<br><br>or<br><br>')[0]!;
  for (const part of first.split('<br>')) {
    const m = /^\s*\*(in|out)\* ([^:]+):\*\*(.+)\*\*\s*$/.exec(part);
    if (!m) throw new Error(`line ${line}: cannot read the parameter '${part}'`);
    const fixed = /^tensor\((\w+)\)$/.exec(m[3]!);
    const param: KernelParam = { name: m[2]!, type: fixed ? { fixed: fixed[1]! } : { variable: m[3]! } };
    (m[1] === 'in' ? inputs : outputs).push(param);
  }
  return { inputs, outputs };
}

/** `13+`, `13`, `[7, 12]`. */
function parseVersion(cell: string, line: number): { since: number; until: number | null } {
  const open = /^(\d+)\+$/.exec(cell);
  if (open) return { since: Number(open[1]), until: null };
  const one = /^(\d+)$/.exec(cell);
  if (one) return { since: Number(one[1]), until: Number(one[1]) };
  const range = /^\[(\d+), (\d+)\]$/.exec(cell);
  if (range) return { since: Number(range[1]), until: Number(range[2]) };
  throw new Error(`line ${line}: cannot read the opset version '${cell}'`);
}

/** `**T** = tensor(float), seq(tensor(float))<br/> **T1** = tensor(bool)`: tensor types only (sequences are not ours). */
function parseTypes(cell: string): Record<string, string[]> {
  const types: Record<string, string[]> = {};
  for (const part of cell.split('<br/>')) {
    const m = /^\s*\*\*([^*]+)\*\* = (.*)$/.exec(part);
    if (!m) continue;
    types[m[1]!] = [...m[2]!.matchAll(/(?<!seq\()tensor\((\w+)\)/g)].map((t) => t[1]!);
  }
  return types;
}

/** The TypeScript module src/runtime/cudaKernels.ts for a parsed table. */
export function renderKernelTable(kernels: ReadonlyMap<string, OpKernels>, source: KernelSource): string {
  const param = (p: KernelParam): string => `{ name: ${JSON.stringify(p.name)}, type: ${'fixed' in p.type ? `{ fixed: ${JSON.stringify(p.type.fixed)} }` : `{ variable: ${JSON.stringify(p.type.variable)} }`} }`;
  const range = (r: KernelRange): string =>
    `{ since: ${r.since}, until: ${r.until ?? 'null'}, types: { ${Object.entries(r.types)
      .map(([k, v]) => `${JSON.stringify(k)}: [${v.map((t) => JSON.stringify(t)).join(', ')}]`)
      .join(', ')} } }`;
  const rows = [...kernels.entries()].map(
    ([op, k]) =>
      `  ${JSON.stringify(op)}: {\n    inputs: [${k.inputs.map(param).join(', ')}],\n    outputs: [${k.outputs.map(param).join(', ')}],\n    ranges: [\n${k.ranges.map((r) => `      ${range(r)},`).join('\n')}\n    ],\n  },`,
  );
  return `/**
 * GENERATED by src/runtime/cudaKernelsGen.ts — do not edit. The ai.onnx kernels
 * onnxruntime's CUDA execution provider registers: per op, its signature (type
 * variables of inputs and outputs) and, per opset range, the tensor types each
 * variable may take. From ${source.file}
 * (microsoft/onnxruntime docs/OperatorKernels.md at commit ${source.commit}).
 */
import type { KernelSource, OpKernels } from './cudaKernelsGen.js';

export const CUDA_KERNEL_SOURCE: KernelSource = { file: ${JSON.stringify(source.file)}, commit: ${JSON.stringify(source.commit)} };

export const CUDA_KERNELS: Readonly<Record<string, OpKernels>> = {
${rows.join('\n')}
};
`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, commit] = process.argv.slice(2);
  if (!file || !commit) {
    process.stderr.write('usage: node dist/src/runtime/cudaKernelsGen.js PATH/TO/OperatorKernels.md ONNXRUNTIME_COMMIT > src/runtime/cudaKernels.ts\n');
    process.exit(2);
  }
  process.stdout.write(renderKernelTable(parseOperatorKernels(readFileSync(file, 'utf8')), { file: file.replace(/^.*\/(test\/fixtures\/)/, '$1'), commit }));
}
