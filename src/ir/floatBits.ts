/**
 * The 16-bit float formats as bit patterns: IEEE 754 half precision (f16:
 * 1 sign, 5 exponent, 10 mantissa bits) and bfloat16 (bf16: the top half of an
 * f32, 8 exponent bits, 7 mantissa bits). A number is first rounded to f32 (as
 * the f32 tensors it comes from hold it), then to 16 bits with
 * round-to-nearest-even — what onnxruntime's Cast, PyTorch and the
 * `safetensors` library do. NaN stays NaN, overflow becomes ±Infinity (f16;
 * bf16 has f32's range), and signed zeros keep their sign.
 */

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** The f32 bit pattern of `x` (rounded to f32 first). */
function f32Bits(x: number): number {
  F32[0] = x;
  return U32[0]!;
}

/** `x` rounded to the nearest f16, as its 16-bit pattern. */
export function toF16Bits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Infinity, or a quiet NaN
  const e = exp - 127 + 15; // the f16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // beyond the largest f16 (65504 rounds up past it): Infinity
  if (e <= 0) {
    // An f16 subnormal (or zero): the value in units of 2^-24, rounded half to even.
    const shift = 14 - e;
    if (shift > 24) return sign; // below half the smallest subnormal
    const full = mant | 0x800000;
    const rest = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let h = full >>> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h++; // a carry into the exponent gives the smallest normal: right
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // a carry may reach 0x7c00 (Infinity): right
  return sign | h;
}

/** The value of an f16 bit pattern. */
export function fromF16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** `x` rounded to the nearest bf16, as its 16-bit pattern. */
export function toBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff; // NaN: keep it a (quiet) NaN
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** The value of a bf16 bit pattern. */
export function fromBf16Bits(h: number): number {
  U32[0] = (h & 0xffff) << 16;
  return F32[0]!;
}

/** Encodes numbers as f16 or bf16 bit patterns. */
export function encodeHalf(format: 'f16' | 'bf16', values: ArrayLike<number>): Uint16Array {
  const to = format === 'f16' ? toF16Bits : toBf16Bits;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = to(values[i]!);
  return out;
}

/** Decodes f16 or bf16 bit patterns (every one is exactly an f32). */
export function decodeHalf(format: 'f16' | 'bf16', bits: ArrayLike<number>): Float32Array {
  const from = format === 'f16' ? fromF16Bits : fromBf16Bits;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = from(bits[i]!);
  return out;
}
