/**
 * The op table: every IR primitive, looked up by name. Each family file
 * exports its ops; adding an op is one entry there plus its gradcheck test.
 */
import { IrError } from '../graph.js';
import type { OpDef } from '../op.js';
import { ELEMENTWISE_OPS } from './elementwise.js';
import { INDEXING_OPS } from './indexing.js';
import { LINALG_OPS } from './linalg.js';
import { NN_OPS } from './nn.js';
import { QUANT_OPS } from './quant.js';
import { SHAPE_OPS } from './shape.js';

const TABLE = new Map<string, OpDef>();
for (const op of [...ELEMENTWISE_OPS, ...LINALG_OPS, ...SHAPE_OPS, ...NN_OPS, ...INDEXING_OPS, ...QUANT_OPS]) {
  if (TABLE.has(op.name)) throw new Error(`op ${op.name} is defined twice`);
  TABLE.set(op.name, op);
}

export function lookupOp(name: string): OpDef {
  const op = TABLE.get(name);
  if (!op) throw new IrError(`unknown IR op '${name}'`);
  return op;
}

export function allOps(): readonly OpDef[] {
  return [...TABLE.values()];
}
