/**
 * The safetensors reader and writer: exact bytes of a tiny file computed by hand,
 * round trips of every dtype, deterministic output, and one test per malformed-file
 * error.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors, type StTensor } from '../../src/runtime/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'ptr-safetensors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file with the given header text (padded to alignment) and data bytes. */
function fileWith(header: string, data: number[] | Uint8Array = [], declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const decodeError = (bytes: Uint8Array): string => {
  try {
    decodeSafetensors(bytes, 'checkpoint.safetensors');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the file to be rejected');
};

describe('encodeSafetensors', () => {
  it('writes the exact bytes of a one-tensor file', () => {
    const bytes = encodeSafetensors({ a: { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) } });
    // The header JSON, 54 characters; 8 + 54 = 62, so 2 spaces of padding make 8 + N = 64.
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    expect(header.length).toBe(54);
    const expected = [
      ...[56, 0, 0, 0, 0, 0, 0, 0], // N = 56, u64 little-endian
      ...[...header].map((c) => c.charCodeAt(0)),
      0x20,
      0x20,
      ...[0x00, 0x00, 0x80, 0x3f], // 1.0f little-endian
      ...[0x00, 0x00, 0x00, 0x40], // 2.0f little-endian
    ];
    expect([...bytes]).toEqual(expected);
    expect(bytes.length).toBe(72);
  });

  it('writes metadata first with sorted keys, and pads so the data starts 8-aligned', () => {
    const bytes = encodeSafetensors({ x: { dtype: 'U8', shape: [3], data: Uint8Array.of(7, 8, 9) } }, { z: '1', format: 'pt' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.trimEnd()).toBe('{"__metadata__":{"format":"pt","z":"1"},"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}');
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    expect([...bytes.subarray(8 + n)]).toEqual([7, 8, 9]);
  });

  it('gives byte-identical files whatever order the tensors were inserted in', () => {
    const t = (v: number): StTensor => ({ dtype: 'F32', shape: [1], data: Float32Array.of(v) });
    const one = encodeSafetensors(new Map([['b', t(2)], ['a', t(1)], ['10', t(10)], ['9', t(9)]]), { y: '2', x: '1' });
    const two = encodeSafetensors({ a: t(1), 9: t(9), b: t(2), 10: t(10) }, { x: '1', y: '2' });
    expect(Buffer.from(one).equals(Buffer.from(two))).toBe(true);
    // Sorted by name as strings: "10" < "9" < "a" < "b", and the data follows that order.
    const { tensors } = decodeSafetensors(one, 'f');
    expect([...tensors.keys()]).toEqual(['10', '9', 'a', 'b']);
    const n = Number(new DataView(one.buffer).getBigUint64(0, true));
    expect([...new Float32Array(one.slice(8 + n).buffer)]).toEqual([10, 9, 1, 2]);
  });

  it('rejects data that does not match its dtype or shape', () => {
    expect(() => encodeSafetensors({ w: { dtype: 'F32', shape: [3], data: Float32Array.of(1, 2) } })).toThrow('tensor "w" has shape [3] (3 elements) but 2 values');
    expect(() => encodeSafetensors({ w: { dtype: 'I64', shape: [1], data: Int32Array.of(1) } })).toThrow('tensor "w" is I64, which is carried as BigInt64Array, but its data is Int32Array');
    expect(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })).toThrow('reserved');
  });
});

describe('round trips', () => {
  const all: Record<string, StTensor> = {
    f64: { dtype: 'F64', shape: [2], data: Float64Array.of(Math.PI, -1e300) },
    f32: { dtype: 'F32', shape: [2, 3], data: Float32Array.of(0, -0.5, 1.5, 3, Infinity, -7) },
    f16: { dtype: 'F16', shape: [3], data: Uint16Array.of(0x3c00, 0xc000, 0x7bff) },
    bf16: { dtype: 'BF16', shape: [1, 2], data: Uint16Array.of(0x3f80, 0xbf80) },
    i64: { dtype: 'I64', shape: [3], data: BigInt64Array.of(-1n, 9007199254740993n, 0n) },
    i32: { dtype: 'I32', shape: [2, 1], data: Int32Array.of(-2147483648, 2147483647) },
    i8: { dtype: 'I8', shape: [3], data: Int8Array.of(-128, 0, 127) },
    u8: { dtype: 'U8', shape: [4], data: Uint8Array.of(0, 1, 128, 255) },
    bool: { dtype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) },
    scalar: { dtype: 'F32', shape: [], data: Float32Array.of(42) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  };

  it('decodes every dtype to the same dtype, shape and values', () => {
    const { tensors, metadata } = decodeSafetensors(encodeSafetensors(all, { step: '12' }), 'f');
    expect(metadata).toEqual({ step: '12' });
    expect([...tensors.keys()].sort()).toEqual(Object.keys(all).sort());
    for (const [name, t] of Object.entries(all)) {
      const back = tensors.get(name)!;
      expect(back.dtype, name).toBe(t.dtype);
      expect(back.shape, name).toEqual(t.shape);
      expect(back.data.constructor, name).toBe(t.data.constructor);
      expect([...back.data], name).toEqual([...t.data]);
    }
  });

  it('returns aligned copies even when the data sits at an odd offset', () => {
    // A 1-byte tensor first puts the F64 at data offset 1: the decoder must copy it out.
    const bytes = encodeSafetensors({ a: { dtype: 'U8', shape: [1], data: Uint8Array.of(5) }, b: { dtype: 'F64', shape: [1], data: Float64Array.of(2.5) } });
    const shifted = new Uint8Array(bytes.length + 3).subarray(3);
    shifted.set(bytes);
    const b = decodeSafetensors(shifted, 'f').tensors.get('b')!;
    expect(b.data).toBeInstanceOf(Float64Array);
    expect(b.data.byteOffset % 8).toBe(0);
    expect([...b.data]).toEqual([2.5]);
  });

  it('writes atomically to disk and reads back', () => {
    const path = join(dir, 'model.safetensors');
    writeSafetensors(path, all, { note: 'x' });
    writeSafetensors(path, { only: all['u8']! });
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    const back = readSafetensors(path);
    expect([...back.tensors.keys()]).toEqual(['only']);
    expect(back.metadata).toEqual({});
    // '{"only":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}' is 56 bytes, already aligned.
    expect(readFileSync(path).length).toBe(8 + 56 + 4);
  });
});

describe('decodeSafetensors rejects malformed files', () => {
  const good = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const eightBytes = [0, 0, 128, 63, 0, 0, 0, 64];

  it('accepts the well-formed baseline', () => {
    expect([...decodeSafetensors(fileWith(good, eightBytes), 'f').tensors.get('a')!.data]).toEqual([1, 2]);
  });

  it('a file shorter than the length prefix', () => {
    expect(decodeError(Uint8Array.of(1, 2, 3))).toBe('checkpoint.safetensors: the file is 3 bytes, too short for the 8-byte header length');
  });

  it('a header length beyond the end of the file', () => {
    const bytes = fileWith(good, eightBytes, 999999);
    expect(bytes.length).toBe(70);
    expect(decodeError(bytes)).toBe('checkpoint.safetensors: header length 999999 exceeds the file size 70');
  });

  it('a header that is not JSON, with the parser message', () => {
    expect(decodeError(fileWith('{"a":', []))).toMatch(/^checkpoint\.safetensors: the header is not valid JSON: .+/);
  });

  it('a header that is not UTF-8', () => {
    const bytes = fileWith('{"a":1}');
    bytes[10] = 0xff;
    expect(decodeError(bytes)).toBe('checkpoint.safetensors: the header is not valid UTF-8');
  });

  it('a header that is not an object', () => {
    expect(decodeError(fileWith('[1]'))).toBe('checkpoint.safetensors: the header must be a JSON object');
  });

  it('an unknown dtype', () => {
    expect(decodeError(fileWith('{"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}}', [0, 0]))).toBe(
      'checkpoint.safetensors: tensor "a" has unknown dtype "F8" (expected one of F64, F32, F16, BF16, I64, I32, I8, U8, BOOL)',
    );
  });

  it('a negative or fractional shape entry', () => {
    expect(decodeError(fileWith('{"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}}', eightBytes))).toBe(
      'checkpoint.safetensors: tensor "a" has shape [2,-1]: -1 is not a non-negative integer',
    );
    expect(decodeError(fileWith('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}', eightBytes))).toBe(
      'checkpoint.safetensors: tensor "a" has shape [1.5]: 1.5 is not a non-negative integer',
    );
  });

  it('a shape whose size does not match the offsets', () => {
    expect(decodeError(fileWith('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', eightBytes))).toBe(
      'checkpoint.safetensors: tensor "a" has shape [3] of F32 (12 bytes), but its "data_offsets" [0, 8] span 8 bytes',
    );
  });

  it('malformed offsets', () => {
    expect(decodeError(fileWith('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}', eightBytes))).toBe(
      'checkpoint.safetensors: tensor "a" has "data_offsets" [0]; expected [begin, end], two non-negative integers',
    );
    expect(decodeError(fileWith('{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}', eightBytes))).toBe(
      'checkpoint.safetensors: tensor "a" has "data_offsets" [8, 0] that end before they begin',
    );
  });

  it('offsets beyond the data', () => {
    expect(decodeError(fileWith('{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', eightBytes))).toBe(
      'checkpoint.safetensors: tensor "a" has "data_offsets" [4, 12] beyond the end of the data (8 bytes)',
    );
  });

  it('overlapping tensors', () => {
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expect(decodeError(fileWith(header, eightBytes))).toBe('checkpoint.safetensors: tensors "a" [0, 8] and "b" [4, 8] overlap');
  });

  it('a gap between tensors, or before the first', () => {
    const header = '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}';
    expect(decodeError(fileWith(header, eightBytes))).toBe('checkpoint.safetensors: a gap of 2 bytes after tensor "a" (ends at 2), before tensor "b" (begins at 4)');
    const first = '{"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}';
    expect(decodeError(fileWith(first, eightBytes))).toBe('checkpoint.safetensors: a gap of 4 bytes at the start of the data, before tensor "b" (begins at 4)');
  });

  it('bytes left over after the last tensor', () => {
    expect(decodeError(fileWith('{"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]}}', eightBytes))).toBe(
      'checkpoint.safetensors: the tensors cover 6 bytes, but the data is 8 bytes',
    );
  });

  it('non-string metadata values', () => {
    expect(decodeError(fileWith('{"__metadata__":{"step":12}}'))).toBe('checkpoint.safetensors: "__metadata__" value for "step" must be a string, not 12');
    expect(decodeError(fileWith('{"__metadata__":[]}'))).toBe('checkpoint.safetensors: "__metadata__" must be an object of strings');
  });
});
