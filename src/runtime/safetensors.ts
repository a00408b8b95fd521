/**
 * The Hugging Face safetensors format, read and written by hand so checkpoints
 * open in the `safetensors` library: an 8-byte little-endian header length N,
 * N bytes of UTF-8 JSON (`name → {dtype, shape, data_offsets}` plus optional
 * `__metadata__`), then the tensors' bytes, contiguous, in header order.
 *
 * Writing is deterministic: tensors and metadata keys are sorted by name, so the
 * same tensors give the same bytes whatever order they were inserted in.
 * Reading validates everything the reference implementation does and names the
 * file and the problem in the error.
 */
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { decodeHalf, encodeHalf } from '../ir/floatBits.js';
import { writeFileAtomic } from './atomic.js';

export type StDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I8' | 'U8' | 'BOOL';

/** F16 and BF16 are carried as their raw 16-bit patterns (see toFloat32/fromFloat32 for their values). */
export type StData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;

export interface StTensor {
  dtype: StDType;
  shape: number[];
  data: StData;
}

export interface SafetensorsFile {
  tensors: Map<string, StTensor>;
  metadata: Record<string, string>;
}

/** Bytes per element and the typed array that carries each dtype. */
const DTYPES: Readonly<Record<StDType, { size: number; array: new (buffer: ArrayBuffer) => StData }>> = {
  F64: { size: 8, array: Float64Array },
  F32: { size: 4, array: Float32Array },
  F16: { size: 2, array: Uint16Array },
  BF16: { size: 2, array: Uint16Array },
  I64: { size: 8, array: BigInt64Array },
  I32: { size: 4, array: Int32Array },
  I8: { size: 1, array: Int8Array },
  U8: { size: 1, array: Uint8Array },
  BOOL: { size: 1, array: Uint8Array },
};

const METADATA_KEY = '__metadata__';
/** The header is padded so the byte buffer starts 8-aligned, as the reference writer does. */
const ALIGNMENT = 8;

/** Encodes tensors (and optional string metadata) as a safetensors file. */
export function encodeSafetensors(tensors: ReadonlyMap<string, StTensor> | Readonly<Record<string, StTensor>>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  requireLittleEndian();
  const entries = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).sort(([a], [b]) => compareNames(a, b));
  // Built by hand rather than with one JSON.stringify, which would put integer-like
  // names ("0", "10") first in numeric order instead of the sorted order.
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const keys = Object.keys(metadata).sort(compareNames);
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') throw new Error(`safetensors: metadata value for ${JSON.stringify(k)} must be a string`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === METADATA_KEY) throw new Error(`safetensors: "${METADATA_KEY}" is reserved and cannot name a tensor`);
    const byteLength = checkTensor(name, t);
    const entry = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + byteLength] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset += byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = json.length + ((ALIGNMENT - ((8 + json.length) % ALIGNMENT)) % ALIGNMENT);
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const [, t] of entries) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
}

/** Decodes a safetensors file; `file` names it in error messages. */
export function decodeSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  requireLittleEndian();
  function fail(message: string): never {
    throw new Error(`${file}: ${message}`);
  }
  if (bytes.length < 8) fail(`the file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) fail(`header length ${headerLength} exceeds the file size ${bytes.length}`);
  const n = Number(headerLength);
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail('the header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`the header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('the header must be a JSON object');
  const buffer = bytes.subarray(8 + n);

  const metadata: Record<string, string> = {};
  const spans: { name: string; begin: number; end: number; dtype: StDType; shape: number[] }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`"${METADATA_KEY}" must be an object of strings`);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"${METADATA_KEY}" value for ${JSON.stringify(k)} must be a string, not ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const what = `tensor ${JSON.stringify(name)}`;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`${what} must be an object with "dtype", "shape" and "data_offsets"`);
    const { dtype, shape, data_offsets: offsets } = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPES, dtype)) {
      fail(`${what} has unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPES).join(', ')})`);
    }
    if (!Array.isArray(shape)) fail(`${what} has no "shape" array`);
    const bad = (shape as unknown[]).find((d) => !isCount(d));
    if (bad !== undefined) fail(`${what} has shape ${JSON.stringify(shape)}: ${JSON.stringify(bad)} is not a non-negative integer`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(`${what} has "data_offsets" ${JSON.stringify(offsets)}; expected [begin, end], two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`${what} has "data_offsets" [${begin}, ${end}] that end before they begin`);
    const expected = (shape as number[]).reduce((a, d) => a * d, 1) * DTYPES[dtype as StDType].size;
    if (end - begin !== expected) {
      fail(`${what} has shape ${JSON.stringify(shape)} of ${dtype} (${expected} bytes), but its "data_offsets" [${begin}, ${end}] span ${end - begin} bytes`);
    }
    if (end > buffer.length) fail(`${what} has "data_offsets" [${begin}, ${end}] beyond the end of the data (${buffer.length} bytes)`);
    spans.push({ name, begin, end, dtype: dtype as StDType, shape: shape as number[] });
  }

  // The tensors must tile the byte buffer exactly: no overlap, no gap, nothing left over.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: (typeof spans)[number] | null = null;
  for (const s of spans) {
    if (s.begin < cursor) fail(`tensors ${JSON.stringify(previous!.name)} [${previous!.begin}, ${previous!.end}] and ${JSON.stringify(s.name)} [${s.begin}, ${s.end}] overlap`);
    if (s.begin > cursor) {
      const before = previous ? `after tensor ${JSON.stringify(previous.name)} (ends at ${cursor})` : 'at the start of the data';
      fail(`a gap of ${s.begin - cursor} bytes ${before}, before tensor ${JSON.stringify(s.name)} (begins at ${s.begin})`);
    }
    cursor = s.end;
    previous = s;
  }
  if (cursor !== buffer.length) fail(`the tensors cover ${cursor} bytes, but the data is ${buffer.length} bytes`);

  const tensors = new Map<string, StTensor>();
  for (const s of spans.sort((a, b) => compareNames(a.name, b.name))) {
    // A fresh buffer per tensor: the file's bytes may sit at any offset, and typed
    // arrays need their element alignment.
    const copy = new ArrayBuffer(s.end - s.begin);
    new Uint8Array(copy).set(buffer.subarray(s.begin, s.end));
    tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data: new DTYPES[s.dtype].array(copy) });
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically. */
export function writeSafetensors(path: string, tensors: ReadonlyMap<string, StTensor> | Readonly<Record<string, StTensor>>, metadata?: Readonly<Record<string, string>>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Reads and validates a safetensors file. */
export function readSafetensors(path: string): SafetensorsFile {
  return decodeSafetensors(readFileSync(path), path);
}

/**
 * A tensor's values as f32: F16 and BF16 decoded (exactly: every one is an f32),
 * F64 and large integers rounded to the nearest f32, BOOL as 0/1.
 */
export function toFloat32(t: StTensor): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  if (t.dtype === 'F16' || t.dtype === 'BF16') return decodeHalf(t.dtype === 'F16' ? 'f16' : 'bf16', t.data as Uint16Array);
  const src = t.data as ArrayLike<number | bigint>;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
  return out;
}

/** The smallest and largest value of each integer dtype (for I64, the largest float64 below 2^63). */
const INT_RANGE: Partial<Record<StDType, readonly [number, number]>> = {
  I64: [-(2 ** 63), 2 ** 63 - 1024],
  I32: [-(2 ** 31), 2 ** 31 - 1],
  I8: [-128, 127],
  U8: [0, 255],
  BOOL: [0, 1],
};

/**
 * f32 (or float64) values stored as `dtype`. F16 and BF16 round to nearest, ties
 * to even (NaN stays NaN, ±0 keep their sign; past f16's largest finite value,
 * 65504, a value becomes ±Infinity), as PyTorch and onnxruntime convert. An
 * integer dtype takes only whole values in its range: anything else is an error,
 * never a silent change of the weights.
 */
export function fromFloat32(name: string, values: ArrayLike<number>, shape: readonly number[], dtype: StDType): StTensor {
  const range = INT_RANGE[dtype];
  if (range) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isInteger(v) || v < range[0] || v > range[1]) {
        throw new Error(`safetensors: tensor ${JSON.stringify(name)} cannot be stored as ${dtype}: element ${i} is ${v}, not a whole number in [${range[0]}, ${range[1]}]`);
      }
    }
  }
  const data = ((): StData => {
    switch (dtype) {
      case 'F64':
        return Float64Array.from(values);
      case 'F32':
        return Float32Array.from(values);
      case 'F16':
        return encodeHalf('f16', values);
      case 'BF16':
        return encodeHalf('bf16', values);
      case 'I64':
        return BigInt64Array.from(Array.from(values), (v) => BigInt(v));
      case 'I32':
        return Int32Array.from(values);
      case 'I8':
        return Int8Array.from(values);
      case 'U8':
      case 'BOOL':
        return Uint8Array.from(values);
    }
  })();
  const t: StTensor = { dtype, shape: [...shape], data };
  checkTensor(name, t);
  return t;
}

/** Checks that a tensor's data matches its dtype and shape; returns its size in bytes. */
function checkTensor(name: string, t: StTensor): number {
  const spec = DTYPES[t.dtype];
  if (!spec) throw new Error(`safetensors: tensor ${JSON.stringify(name)} has unknown dtype ${JSON.stringify(t.dtype)}`);
  if (!(t.data instanceof spec.array)) {
    throw new Error(`safetensors: tensor ${JSON.stringify(name)} is ${t.dtype}, which is carried as ${spec.array.name}, but its data is ${t.data.constructor.name}`);
  }
  const bad = t.shape.find((d) => !isCount(d));
  if (bad !== undefined) throw new Error(`safetensors: tensor ${JSON.stringify(name)} has shape ${JSON.stringify(t.shape)}: ${bad} is not a non-negative integer`);
  const count = t.shape.reduce((a, d) => a * d, 1);
  if (t.data.length !== count) throw new Error(`safetensors: tensor ${JSON.stringify(name)} has shape ${JSON.stringify(t.shape)} (${count} elements) but ${t.data.length} values`);
  return count * spec.size;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Code-unit order: deterministic and independent of locale. */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Typed arrays use the machine's byte order and the format is little-endian; every platform Node supports today is. */
function requireLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('safetensors: big-endian machines are not supported');
}
