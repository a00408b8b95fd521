/**
 * Safetensors of any size: files are written from the tensors' own memory with
 * positioned writes and read one tensor at a time with positioned reads. A file
 * past 4 GiB (sparse on disk: zero stretches are left as holes) round-trips bit
 * for bit; weights above a shard size are written as Hugging Face shards them
 * (`model-0000i-of-0000n.safetensors` + `model.safetensors.index.json`), and a
 * tampered index is refused naming the file.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  encodeSafetensors,
  openSafetensors,
  openSafetensorsIn,
  readSafetensors,
  writeSafetensors,
  writeShardedSafetensors,
  type StTensor,
} from '../../src/runtime/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'ptr-st-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const f32 = (...values: number[]): StTensor => ({ dtype: 'F32', shape: [values.length], data: Float32Array.from(values) });

describe('streaming writer', () => {
  it('writes the same bytes as the in-memory encoder, sparse or not', () => {
    const tensors = new Map<string, StTensor>([
      ['b', f32(1, -2, 3.5)],
      ['a', { dtype: 'F16', shape: [2, 2], data: Uint16Array.of(0x3c00, 0, 0, 0xbc00) }],
      ['zeros', { dtype: 'F32', shape: [300_000], data: new Float32Array(300_000) }],
    ]);
    const expected = Buffer.from(encodeSafetensors(tensors, { step: '3' }));
    for (const sparse of [true, false]) {
      const file = join(dir, `same-${sparse}.safetensors`);
      writeSafetensors(file, tensors, { step: '3' }, { sparse });
      expect(readFileSync(file).equals(expected), `sparse: ${sparse}`).toBe(true);
    }
  });

  it('reads one tensor at a time and refuses a file shorter than its header says, naming it', () => {
    const file = join(dir, 'lazy.safetensors');
    writeSafetensors(file, new Map([['x', f32(1, 2)], ['y', f32(3, 4, 5)]]));
    const reader = openSafetensors(file);
    expect([...reader.tensors]).toEqual([
      ['x', { dtype: 'F32', shape: [2], bytes: 8 }],
      ['y', { dtype: 'F32', shape: [3], bytes: 12 }],
    ]);
    expect(Array.from(reader.read('y').data as Float32Array)).toEqual([3, 4, 5]);
    expect(() => reader.read('z')).toThrow(`${file}: has no tensor "z"`);
    reader.close();
    writeFileSync(file, readFileSync(file).subarray(0, statSync(file).size - 4));
    expect(() => openSafetensors(file)).toThrow(`${file}: tensor "y" has "data_offsets" [8, 20] beyond the end of the data (16 bytes)`);
  });

  it('refuses a header length above the format’s 100 MB limit before allocating it', () => {
    const file = join(dir, 'huge-header.safetensors');
    const bytes = Buffer.alloc(8 + 16);
    bytes.writeBigUInt64LE(200_000_000n, 0);
    writeFileSync(file, bytes);
    // Declared beyond the file: refused on the size; a sparse file that long would be refused on the cap.
    expect(() => openSafetensors(file)).toThrow(/header length 200000000 exceeds the file size 24/);
  });

  // 9 tensors of 512 MiB: 4.5 GiB of data, past both the 2 GiB and the 4 GiB offsets.
  it('round-trips a file larger than 4 GiB bit for bit, in memory of one tensor', () => {
    const n = 128 * 1024 * 1024; // f32 elements per tensor: 512 MiB
    // One buffer a little longer than a tensor, with values at its start, middle and
    // end; tensor i is the view starting i elements in, so every tensor differs.
    const backing = new Float32Array(n + 16);
    for (let j = 0; j < 16; j++) {
      backing[j] = j + 1;
      backing[n / 2 + j] = -(j + 1) / 8;
      backing[n + j] = 1000 + j;
    }
    const view = (i: number): Float32Array => new Float32Array(backing.buffer, 4 * i, n);
    const tensors = new Map<string, StTensor>(Array.from({ length: 9 }, (_, i) => [`layer.${i}.w`, { dtype: 'F32', shape: [n / 1024, 1024], data: view(i) }]));
    const file = join(dir, 'big.safetensors');
    writeSafetensors(file, tensors, { format: 'pt' });
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(4.5 * 2 ** 30);
    // Sparse: far fewer blocks on disk than bytes in the file (where the file system keeps holes).
    expect(statSync(file).blocks * 512).toBeLessThan(size / 4);
    const reader = openSafetensors(file);
    try {
      expect(reader.tensors.size).toBe(9);
      for (let i = 0; i < 9; i++) {
        const t = reader.read(`layer.${i}.w`);
        expect(t.shape).toEqual([n / 1024, 1024]);
        const got = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        const want = Buffer.from(view(i).buffer, view(i).byteOffset, view(i).byteLength);
        expect(got.equals(want), `layer.${i}.w`).toBe(true);
      }
    } finally {
      reader.close();
    }
    rmSync(file);
  }, 120_000);
});

describe('sharded weights, as Hugging Face writes them', () => {
  const tensors = new Map<string, StTensor>([
    ['embed', f32(...Array.from({ length: 10 }, (_, i) => i))], // 40 bytes
    ['head', f32(1, 2, 3, 4, 5)], // 20 bytes
    ['layers.0.w', f32(...Array.from({ length: 8 }, (_, i) => -i))], // 32 bytes
    ['layers.1.w', f32(9, 8, 7)], // 12 bytes
  ]);

  it('writes one file below the shard size', () => {
    const out = mkdtempSync(join(dir, 'one-'));
    expect(writeShardedSafetensors(out, 'model', tensors, {}, 1000)).toEqual(['model.safetensors']);
    expect(readdirSync(out)).toEqual(['model.safetensors']);
  });

  it('splits greedily in name order above it, with an index naming every tensor’s shard', () => {
    const out = mkdtempSync(join(dir, 'shards-'));
    // 64 bytes per shard: embed + head (60), layers.0.w + layers.1.w (44).
    const files = writeShardedSafetensors(out, 'model', tensors, { format: 'pt' }, 64);
    expect(files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    expect(readdirSync(out).sort()).toEqual([...files].sort());
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(index).toEqual({
      metadata: { format: 'pt', total_size: 104 },
      weight_map: {
        embed: 'model-00001-of-00002.safetensors',
        head: 'model-00001-of-00002.safetensors',
        'layers.0.w': 'model-00002-of-00002.safetensors',
        'layers.1.w': 'model-00002-of-00002.safetensors',
      },
    });
    expect([...readSafetensors(join(out, 'model-00002-of-00002.safetensors')).tensors.keys()]).toEqual(['layers.0.w', 'layers.1.w']);
    const reader = openSafetensorsIn(out, 'model');
    try {
      expect([...reader.tensors.keys()]).toEqual(['embed', 'head', 'layers.0.w', 'layers.1.w']);
      for (const [name, t] of tensors) expect(Array.from(reader.read(name).data as Float32Array), name).toEqual(Array.from(t.data as Float32Array));
      expect(reader.fileOf('head')).toBe(join(out, 'model-00001-of-00002.safetensors'));
    } finally {
      reader.close();
    }
    const all = readSafetensors(join(out, 'model.safetensors.index.json'));
    expect([...all.tensors.keys()]).toEqual([...tensors.keys()].sort());
  });

  it('gives a tensor larger than the shard size a shard of its own', () => {
    const out = mkdtempSync(join(dir, 'big-tensor-'));
    const files = writeShardedSafetensors(out, 'model', tensors, {}, 24);
    // embed (40 > 24) alone, head (20), layers.0.w (32) alone, layers.1.w (12).
    expect(files).toHaveLength(5);
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.values(index.weight_map)).toEqual(['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors']);
  });

  it('refuses an index that disagrees with its shards, naming the file', () => {
    const out = mkdtempSync(join(dir, 'tampered-'));
    writeShardedSafetensors(out, 'model', tensors, {}, 64);
    const indexFile = join(out, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8'));
    const write = (v: unknown): void => writeFileSync(indexFile, JSON.stringify(v));
    write({ ...index, weight_map: { ...index.weight_map, head: 'model-00002-of-00002.safetensors' } });
    expect(() => openSafetensorsIn(out, 'model')).toThrow(`${indexFile}: ${join(out, 'model-00001-of-00002.safetensors')} holds tensor "head", which the index puts in model-00002-of-00002.safetensors`);
    write({ ...index, weight_map: { ...index.weight_map, extra: 'model-00001-of-00002.safetensors' } });
    expect(() => openSafetensorsIn(out, 'model')).toThrow(`${indexFile}: tensor "extra" is not in model-00001-of-00002.safetensors, where the index puts it`);
    write({ ...index, metadata: { total_size: 7 } });
    expect(() => openSafetensorsIn(out, 'model')).toThrow(`${indexFile}: "total_size" is 7 but the shards hold 104 bytes of tensors`);
    write({ ...index, weight_map: { ...index.weight_map, head: '../../etc/passwd' } });
    expect(() => openSafetensorsIn(out, 'model')).toThrow(`${indexFile}: shard "../../etc/passwd" must be a file name in the index's folder`);
    writeFileSync(indexFile, '{"weight_map": ');
    expect(() => openSafetensorsIn(out, 'model')).toThrow(/model\.safetensors\.index\.json: not valid JSON/);
  });
});
