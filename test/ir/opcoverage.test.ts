/** Every op in the op table has a gradcheck test: a `checkOp({ op: 'name', ... })` case in test/ir/ops.*.test.ts. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { allOps } from '../../src/ir/ops/index.js';

it('has a checkOp case (ONNX vs reference, gradcheck) for every op in the table', () => {
  const dir = __dirname;
  const text = readdirSync(dir)
    .filter((f) => /^ops\..*\.test\.ts$/.test(f))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
  // Cases name the op as `op: 'name'` or loop over a list of quoted names.
  const tested = new Set([...text.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]));
  const names = allOps().map((o) => o.name);
  expect(names.length).toBeGreaterThan(40);
  expect(names.filter((n) => !tested.has(n))).toEqual([]);
});
