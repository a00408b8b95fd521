/**
 * An independent reader of our checkpoints: a Python program using only its
 * standard library parses model.safetensors the way the safetensors spec
 * describes it (u64 little-endian header size, JSON header, data_offsets into
 * the byte buffer) and must find exactly the tensors we wrote. Skipped where
 * there is no python3.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { writeSafetensors } from '../../src/runtime/safetensors.js';

const READER = `
import json, struct, sys, array
data = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', data[:8])
header = json.loads(data[8:8 + n].decode('utf-8'))
assert (8 + n) % 8 == 0, 'buffer not 8-aligned'
buf = data[8 + n:]
out = {'__metadata__': header.pop('__metadata__', None), 'tensors': {}}
end = 0
for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0]):
    b, e = info['data_offsets']
    assert b == end, 'gap or overlap before ' + name
    end = e
    code = {'F32': 'f', 'I64': 'q', 'F64': 'd', 'I32': 'i'}[info['dtype']]
    a = array.array(code)
    a.frombytes(buf[b:e])
    if sys.byteorder != 'little':
        a.byteswap()
    count = 1
    for d in info['shape']:
        count *= d
    assert len(a) == count, name + ': size does not match shape'
    out['tensors'][name] = {'dtype': info['dtype'], 'shape': info['shape'], 'values': a.tolist()}
assert end == len(buf), 'trailing bytes'
print(json.dumps(out))
`;

const python = spawnSync('python3', ['--version']).status === 0;

it.skipIf(!python)('is read back exactly by an independent Python reader of the spec', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'ptr-st-')), 'model.safetensors');
  const w = Float32Array.from([0.5, -1.25, 3, 1e-8, -0, 7.5]);
  writeSafetensors(
    file,
    new Map([
      ['blocks.0.attn.qkv.w', { dtype: 'F32', shape: [2, 3], data: w }],
      ['head.b', { dtype: 'F32', shape: [1], data: Float32Array.from([2]) }],
      ['step', { dtype: 'I64', shape: [], data: BigInt64Array.of(1234567890123n) }],
    ]),
    { stage: 'pretrain', step: '40' },
  );
  const r = spawnSync('python3', ['-c', READER, file], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const parsed = JSON.parse(r.stdout);
  expect(parsed.__metadata__).toEqual({ stage: 'pretrain', step: '40' });
  expect(parsed.tensors['blocks.0.attn.qkv.w']).toEqual({ dtype: 'F32', shape: [2, 3], values: Array.from(w) });
  expect(parsed.tensors['head.b'].values).toEqual([2]);
  expect(parsed.tensors['step']).toEqual({ dtype: 'I64', shape: [], values: [1234567890123] });
});
