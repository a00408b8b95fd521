/**
 * The 16-bit floats and small integers of safetensors checkpoints: F16, BF16,
 * I8, U8, I32 written from f32 values and read back as f32 (`fromFloat32`,
 * `toFloat32`), with the conversion rules spelled out value by value —
 * round to nearest, ties to even; NaN stays NaN; signed zeros; overflow — and
 * f16 rounding cross-checked against Python's own half-precision packing
 * (`struct` format 'e') where python3 exists.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fromBf16Bits, fromF16Bits, toBf16Bits, toF16Bits } from '../../src/ir/floatBits.js';
import { decodeSafetensors, encodeSafetensors, fromFloat32, toFloat32, type StTensor } from '../../src/runtime/safetensors.js';
import { Prng } from '../../src/runtime/prng.js';

const hex = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;

describe('bf16 ↔ f32', () => {
  // [value, bf16 bits, the value it reads back as]
  const cases: [number, number, number][] = [
    [1, 0x3f80, 1],
    [-2, 0xc000, -2],
    [1 + 2 ** -8, 0x3f80, 1], // exactly halfway between 1 and 1 + 2^-7: to the even one, 1
    [1 + 3 * 2 ** -8, 0x3f82, 1 + 2 ** -6], // halfway between 0x3f81 and 0x3f82: up, to the even one
    [1 + 2 ** -8 + 2 ** -20, 0x3f81, 1 + 2 ** -7], // just above halfway: up
    [1 + 2 ** -8 - 2 ** -20, 0x3f80, 1], // just below: down
    [Math.PI, 0x4049, 3.140625],
    [3.4028234663852886e38, 0x7f80, Infinity], // f32's largest rounds past bf16's (0x7f7f)
    [3.3895313892515355e38, 0x7f7f, 3.3895313892515355e38],
    [Infinity, 0x7f80, Infinity],
    [-Infinity, 0xff80, -Infinity],
    [-0, 0x8000, -0],
    [1.401298464324817e-45, 0x0000, 0], // the smallest f32 subnormal
    [9.183549615799121e-41, 0x0001, 9.183549615799121e-41], // the smallest bf16 subnormal
  ];

  it.each(cases)('%d → %s', (x, bits, back) => {
    expect(hex(toBf16Bits(x))).toBe(hex(bits));
    expect(Object.is(fromBf16Bits(bits), back)).toBe(true);
  });

  it('NaN stays NaN (quiet)', () => {
    expect(hex(toBf16Bits(NaN))).toBe('0x7fc0');
    // A NaN whose payload sits only in the low 16 bits must not round into Infinity.
    const nan = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0]!;
    expect(Number.isNaN(fromBf16Bits(toBf16Bits(nan)))).toBe(true);
  });
});

describe('f16 ↔ f32', () => {
  const cases: [number, number, number][] = [
    [1, 0x3c00, 1],
    [1 / 3, 0x3555, 0.333251953125],
    [0.1, 0x2e66, 0.0999755859375],
    [1 + 2 ** -11, 0x3c00, 1], // halfway between 1 and 1 + 2^-10: even
    [1 + 3 * 2 ** -11, 0x3c02, 1 + 2 ** -9], // halfway, odd below: up
    [65504, 0x7bff, 65504], // the largest f16
    [65519, 0x7bff, 65504], // below the halfway point 65520
    [65520, 0x7c00, Infinity], // the halfway point: to the even neighbour, Infinity
    [-1e6, 0xfc00, -Infinity],
    [2 ** -14, 0x0400, 2 ** -14], // the smallest normal
    [2 ** -14 - 2 ** -25, 0x0400, 2 ** -14], // halfway between the largest subnormal 0x03ff and it: even
    [2 ** -24, 0x0001, 2 ** -24], // the smallest subnormal
    [2 ** -25, 0x0000, 0], // halfway between 0 and it: even, zero
    [3 * 2 ** -26, 0x0001, 2 ** -24], // above halfway
    [3 * 2 ** -25, 0x0002, 2 ** -23], // halfway between 1 and 2 units: even
    [-0, 0x8000, -0],
    [-(2 ** -26), 0x8000, -0], // underflow keeps the sign
  ];

  it.each(cases)('%d → %s', (x, bits, back) => {
    expect(hex(toF16Bits(x))).toBe(hex(bits));
    expect(Object.is(fromF16Bits(bits), back)).toBe(true);
  });

  it('NaN stays NaN', () => {
    expect(Number.isNaN(fromF16Bits(toF16Bits(NaN)))).toBe(true);
    expect(hex(toF16Bits(NaN) & 0x7c00)).toBe('0x7c00');
  });

  const python = spawnSync('python3', ['--version']).status === 0;
  it.skipIf(!python)("agrees with Python's struct 'e' (IEEE half, round half to even) on 2,000 values across f16's range", () => {
    const prng = new Prng(11);
    // Magnitudes from 2^-26 to 2^16 (Python's packing refuses values that overflow f16), both signs, rounded to f32 first.
    const values = Array.from({ length: 2000 }, () => Math.fround((prng.uniform() < 0.5 ? -1 : 1) * 2 ** (-26 + 41.9 * prng.uniform())));
    const script = 'import json, struct, sys\nprint(json.dumps([struct.unpack("<H", struct.pack("<e", x))[0] for x in json.load(sys.stdin)]))';
    const r = spawnSync('python3', ['-c', script], { input: JSON.stringify(values), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const theirs = JSON.parse(r.stdout) as number[];
    const mismatches = values.filter((x, i) => toF16Bits(x) !== theirs[i]).map((x) => `${x}: ours ${hex(toF16Bits(x))}`);
    expect(mismatches).toEqual([]);
  });
});

describe('fromFloat32 / toFloat32 through a file', () => {
  it('F16, BF16, I8, U8, I32 (and F32, F64) round-trip with the conversion rules', () => {
    const x = [1 / 3, -2.5, 65519, 1e-8];
    const tensors: Record<string, StTensor> = {
      f16: fromFloat32('f16', x, [2, 2], 'F16'),
      bf16: fromFloat32('bf16', x, [4], 'BF16'),
      i8: fromFloat32('i8', [-128, -1, 0, 127], [4], 'I8'),
      u8: fromFloat32('u8', [0, 1, 200, 255], [4], 'U8'),
      i32: fromFloat32('i32', [-2147483648, 2147483647], [2], 'I32'),
      f32: fromFloat32('f32', x, [4], 'F32'),
      f64: fromFloat32('f64', [Math.PI], [1], 'F64'),
    };
    expect(Array.from(tensors['f16']!.data as Uint16Array, hex)).toEqual(['0x3555', '0xc100', '0x7bff', '0x0000']);
    expect(Array.from(tensors['bf16']!.data as Uint16Array, hex)).toEqual(['0x3eab', '0xc020', '0x4780', '0x322c']);
    const bytes = encodeSafetensors(tensors);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))));
    for (const d of ['"F16"', '"BF16"', '"I8"', '"U8"', '"I32"']) expect(header).toContain(`"dtype":${d}`);
    const back = decodeSafetensors(bytes, 'dtypes.safetensors').tensors;
    const f32 = (name: string): number[] => Array.from(toFloat32(back.get(name)!));
    expect(back.get('f16')!.shape).toEqual([2, 2]);
    expect(f32('f16')).toEqual([0.333251953125, -2.5, 65504, 0]);
    expect(f32('bf16')).toEqual([0.333984375, -2.5, 65536, 1.0011717677116394e-8]);
    expect(f32('i8')).toEqual([-128, -1, 0, 127]);
    expect(f32('u8')).toEqual([0, 1, 200, 255]);
    expect(f32('i32')).toEqual([-2147483648, 2147483648]); // 2^31 − 1 is not an f32
    expect(f32('f32')).toEqual(x.map(Math.fround));
    expect(f32('f64')).toEqual([Math.fround(Math.PI)]);
    // Encoding what was decoded gives the same bytes.
    expect(Buffer.from(encodeSafetensors(back)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('an integer dtype takes only whole values in its range', () => {
    expect(() => fromFloat32('w', [1, 128], [2], 'I8')).toThrow('safetensors: tensor "w" cannot be stored as I8: element 1 is 128, not a whole number in [-128, 127]');
    expect(() => fromFloat32('w', [0.5], [1], 'I32')).toThrow('element 0 is 0.5, not a whole number');
    expect(() => fromFloat32('w', [-1], [1], 'U8')).toThrow('element 0 is -1, not a whole number in [0, 255]');
    expect(() => fromFloat32('w', [1, 2, 3], [2], 'F16')).toThrow('safetensors: tensor "w" has shape [2] (2 elements) but 3 values');
  });
});
