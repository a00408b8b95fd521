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
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { decodeHalf, encodeHalf } from '../ir/floatBits.js';
import { writeFileAtomic, writeFileAtomicWith } from './atomic.js';
import { withPath } from './errors.js';

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
/** The reference implementation refuses headers above 100 MB (a forged length must not allocate gigabytes). */
const MAX_HEADER_BYTES = 100_000_000;
/** Bytes per write call, and the grain of holes in sparse files. */
const WRITE_CHUNK = 1 << 20;
/** Bytes per read call: large (fewer calls), and well below the 2 GiB one call can move. */
const READ_CHUNK = 1 << 28;

/** The serialized header of a set of tensors and where each one's bytes go. */
interface Layout {
  /** 8-byte length + padded JSON: the bytes before the tensors. */
  readonly head: Uint8Array;
  /** Tensors in file order (sorted by name). */
  readonly entries: readonly (readonly [string, StTensor])[];
  /** Bytes of tensor data after the head. */
  readonly dataBytes: number;
}

/** Lays tensors out as the reference writer does: sorted by name, header padded to 8 bytes. */
function layout(tensors: ReadonlyMap<string, StTensor> | Readonly<Record<string, StTensor>>, metadata?: Readonly<Record<string, string>>): Layout {
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
  const head = new Uint8Array(8 + headerLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length);
  return { head, entries, dataBytes: offset };
}

/** A tensor's bytes, without a copy. */
function bytesOf(t: StTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Encodes tensors (and optional string metadata) as a safetensors file in memory (small files; see writeSafetensors). */
export function encodeSafetensors(tensors: ReadonlyMap<string, StTensor> | Readonly<Record<string, StTensor>>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const { head, entries, dataBytes } = layout(tensors, metadata);
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head);
  let at = head.length;
  for (const [, t] of entries) {
    out.set(bytesOf(t), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Where one tensor's bytes lie, relative to the start of the data. */
interface Span {
  readonly name: string;
  readonly begin: number;
  readonly end: number;
  readonly dtype: StDType;
  readonly shape: number[];
}

/**
 * Validates a header (the JSON bytes) against the size of the data that follows
 * it, as the reference implementation does: known dtypes, whole shapes, offsets
 * that match the shapes and tile the data exactly. Returns the metadata and the
 * tensors' spans sorted by name.
 */
function parseHeader(json: Uint8Array, dataLength: number, fail: (message: string) => never): { metadata: Record<string, string>; spans: Span[] } {
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
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

  const metadata: Record<string, string> = {};
  const spans: Span[] = [];
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
    if (end > dataLength) fail(`${what} has "data_offsets" [${begin}, ${end}] beyond the end of the data (${dataLength} bytes)`);
    spans.push({ name, begin, end, dtype: dtype as StDType, shape: shape as number[] });
  }

  // The tensors must tile the byte buffer exactly: no overlap, no gap, nothing left over.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: Span | null = null;
  for (const s of spans) {
    if (s.begin < cursor) fail(`tensors ${JSON.stringify(previous!.name)} [${previous!.begin}, ${previous!.end}] and ${JSON.stringify(s.name)} [${s.begin}, ${s.end}] overlap`);
    if (s.begin > cursor) {
      const before = previous ? `after tensor ${JSON.stringify(previous.name)} (ends at ${cursor})` : 'at the start of the data';
      fail(`a gap of ${s.begin - cursor} bytes ${before}, before tensor ${JSON.stringify(s.name)} (begins at ${s.begin})`);
    }
    cursor = s.end;
    previous = s;
  }
  if (cursor !== dataLength) fail(`the tensors cover ${cursor} bytes, but the data is ${dataLength} bytes`);
  return { metadata, spans: spans.sort((a, b) => compareNames(a.name, b.name)) };
}

/** Checks the 8-byte header length against the file size and the reference implementation's cap. */
function checkHeaderLength(headerLength: bigint, fileSize: number, fail: (message: string) => never): number {
  if (headerLength > BigInt(fileSize - 8)) fail(`header length ${headerLength} exceeds the file size ${fileSize}`);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) fail(`header length ${headerLength} exceeds the ${MAX_HEADER_BYTES.toLocaleString('en-US')}-byte limit of the format`);
  return Number(headerLength);
}

/** Decodes a safetensors file held in memory; `file` names it in error messages. */
export function decodeSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  requireLittleEndian();
  const fail = failIn(file);
  if (bytes.length < 8) fail(`the file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = checkHeaderLength(view.getBigUint64(0, true), bytes.length, fail);
  const buffer = bytes.subarray(8 + n);
  const { metadata, spans } = parseHeader(bytes.subarray(8, 8 + n), buffer.length, fail);
  const tensors = new Map<string, StTensor>();
  for (const s of spans) {
    // A fresh buffer per tensor: the file's bytes may sit at any offset, and typed
    // arrays need their element alignment.
    const copy = new ArrayBuffer(s.end - s.begin);
    new Uint8Array(copy).set(buffer.subarray(s.begin, s.end));
    tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data: new DTYPES[s.dtype].array(copy) });
  }
  return { tensors, metadata };
}

/** A tensor's description in a file's header. */
export interface TensorInfo {
  readonly dtype: StDType;
  readonly shape: readonly number[];
  /** Size of its data in bytes. */
  readonly bytes: number;
}

/**
 * Safetensors opened for reading tensor by tensor: only the header is read when
 * opening, and `read` reads one tensor's bytes with positioned reads, so files
 * of any size (a sharded 7B checkpoint) are read in memory of one tensor at a time.
 */
export interface SafetensorsReader {
  /** The file (or the shard index) read. */
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** Every tensor, sorted by name. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Reads one tensor (a fresh buffer of its own); an unknown name is an error naming the file. */
  read(name: string): StTensor;
  /** The file a tensor lives in (the shard, for a sharded set). */
  fileOf(name: string): string;
  close(): void;
}

/** Opens one safetensors file and validates its header against the file's size. */
export function openSafetensors(path: string): SafetensorsReader {
  requireLittleEndian();
  const fail = failIn(path);
  const fd = withPath(path, () => openSync(path, 'r'));
  try {
    const size = fstatSync(fd).size;
    if (size < 8) fail(`the file is ${size} bytes, too short for the 8-byte header length`);
    const lengthBytes = Buffer.alloc(8);
    readFully(fd, lengthBytes, 0, path);
    const n = checkHeaderLength(lengthBytes.readBigUInt64LE(0), size, fail);
    const json = Buffer.alloc(n);
    readFully(fd, json, 8, path);
    const dataStart = 8 + n;
    const { metadata, spans } = parseHeader(json, size - dataStart, fail);
    const byName = new Map(spans.map((s) => [s.name, s]));
    let open = true;
    return {
      path,
      metadata,
      tensors: new Map(spans.map((s) => [s.name, { dtype: s.dtype, shape: s.shape, bytes: s.end - s.begin }])),
      read(name) {
        const s = byName.get(name);
        if (!s) throw new Error(`${path}: has no tensor ${JSON.stringify(name)}`);
        if (!open) throw new Error(`${path}: read after close`);
        const data = new ArrayBuffer(s.end - s.begin);
        readFully(fd, new Uint8Array(data), dataStart + s.begin, path);
        return { dtype: s.dtype, shape: [...s.shape], data: new DTYPES[s.dtype].array(data) };
      },
      fileOf: () => path,
      close() {
        if (open) closeSync(fd);
        open = false;
      },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The index Hugging Face writes beside sharded weights (`model.safetensors.index.json`). */
export interface ShardIndex {
  readonly metadata: { readonly total_size: number } & Readonly<Record<string, unknown>>;
  /** Tensor name → shard file name (in the index's folder). */
  readonly weight_map: Readonly<Record<string, string>>;
}

/**
 * Opens a sharded set through its index file: every shard's header is read and
 * checked against the index (each tensor in the shard the index names, no tensor
 * missing or extra, total_size right).
 */
export function openShardedSafetensors(indexPath: string): SafetensorsReader {
  const fail = failIn(indexPath);
  const text = withPath(indexPath, () => readFileSync(indexPath, 'utf8'));
  let index: Partial<ShardIndex> | null = null;
  try {
    index = JSON.parse(text) as Partial<ShardIndex> | null;
  } catch (e) {
    fail(`not valid JSON: ${(e as Error).message}`);
  }
  const map = index?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map) || Object.values(map).some((f) => typeof f !== 'string')) {
    return fail('expected {"metadata": {"total_size": N}, "weight_map": {tensor: file}}');
  }
  const dir = dirname(indexPath);
  const shards = new Map<string, SafetensorsReader>();
  try {
    for (const file of [...new Set(Object.values(map))].sort()) {
      if (file !== basename(file) || file.startsWith('.')) fail(`shard ${JSON.stringify(file)} must be a file name in the index's folder`);
      shards.set(file, openSafetensors(join(dir, file)));
    }
    const tensors = new Map<string, TensorInfo>();
    let total = 0;
    for (const [file, shard] of shards) {
      for (const [name, info] of shard.tensors) {
        if (map[name] !== file) fail(`${join(dir, file)} holds tensor ${JSON.stringify(name)}, which the index ${map[name] ? `puts in ${map[name]}` : 'does not list'}`);
        tensors.set(name, info);
        total += info.bytes;
      }
    }
    for (const name of Object.keys(map)) if (!tensors.has(name)) fail(`tensor ${JSON.stringify(name)} is not in ${map[name]}, where the index puts it`);
    const declared = index?.metadata?.total_size;
    if (declared !== undefined && declared !== total) fail(`"total_size" is ${JSON.stringify(declared)} but the shards hold ${total} bytes of tensors`);
    const sorted = new Map([...tensors].sort(([a], [b]) => compareNames(a, b)));
    return {
      path: indexPath,
      metadata: shards.size ? shards.values().next().value!.metadata : {},
      tensors: sorted,
      read(name) {
        const file = map[name];
        if (file === undefined) throw new Error(`${indexPath}: has no tensor ${JSON.stringify(name)}`);
        return shards.get(file)!.read(name);
      },
      fileOf: (name) => join(dir, map[name] ?? ''),
      close() {
        for (const s of shards.values()) s.close();
      },
    };
  } catch (e) {
    for (const s of shards.values()) s.close();
    throw e;
  }
}

/**
 * Opens the weights saved as `<prefix>.safetensors` in `dir`, or, when they were
 * sharded, through `<prefix>.safetensors.index.json`.
 */
export function openSafetensorsIn(dir: string, prefix: string): SafetensorsReader {
  const index = join(dir, `${prefix}.safetensors.index.json`);
  return existsSync(index) ? openShardedSafetensors(index) : openSafetensors(join(dir, `${prefix}.safetensors`));
}

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /**
   * Leave all-zero stretches of the file as holes (default true): the bytes read back
   * are the same, and zero-initialised tensors (fresh optimizer state, LoRA B) take no disk.
   */
  readonly sparse?: boolean;
}

/**
 * Writes a safetensors file atomically, streaming: the header, then each tensor's
 * bytes straight from its typed array with positioned writes, so a file of any
 * size is written in the memory its tensors already take (no copy of the whole).
 */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, StTensor> | Readonly<Record<string, StTensor>>,
  metadata?: Readonly<Record<string, string>>,
  options: WriteSafetensorsOptions = {},
): void {
  const { head, entries, dataBytes } = layout(tensors, metadata);
  const sparse = options.sparse ?? true;
  writeFileAtomicWith(path, (fd) => {
    const size = head.length + dataBytes;
    // The file's full length first: chunks of zeros left unwritten read back as zeros.
    if (sparse) ftruncateSync(fd, size);
    writeFully(fd, head, 0);
    let at = head.length;
    for (const [, t] of entries) {
      const bytes = bytesOf(t);
      for (let off = 0; off < bytes.length; off += WRITE_CHUNK) {
        const chunk = bytes.subarray(off, Math.min(bytes.length, off + WRITE_CHUNK));
        if (!(sparse && isZero(chunk))) writeFully(fd, chunk, at + off);
      }
      at += bytes.length;
    }
  });
}

/** Hugging Face's default shard size (`max_shard_size="5GB"`). */
export const DEFAULT_SHARD_BYTES = 5_000_000_000;

/**
 * Writes `<prefix>.safetensors` in `dir`, or — when the tensors are larger than
 * `maxShardBytes` — shards `<prefix>-00001-of-0000N.safetensors` and the index
 * `<prefix>.safetensors.index.json`, as Hugging Face's `save_pretrained` does:
 * tensors in name order, a new shard when the next tensor would overflow the
 * current one (a tensor larger than the limit gets a shard of its own). The index
 * is written last, so a reader never sees it before its shards. Returns the
 * file names written.
 */
export function writeShardedSafetensors(
  dir: string,
  prefix: string,
  tensors: ReadonlyMap<string, StTensor>,
  metadata: Readonly<Record<string, string>> = {},
  maxShardBytes: number = DEFAULT_SHARD_BYTES,
): string[] {
  const sorted = [...tensors].sort(([a], [b]) => compareNames(a, b));
  const total = sorted.reduce((n, [, t]) => n + t.data.byteLength, 0);
  if (total <= maxShardBytes) {
    writeSafetensors(join(dir, `${prefix}.safetensors`), tensors, metadata);
    return [`${prefix}.safetensors`];
  }
  const shards: (readonly [string, StTensor])[][] = [[]];
  let filled = 0;
  for (const entry of sorted) {
    const bytes = entry[1].data.byteLength;
    if (filled > 0 && filled + bytes > maxShardBytes) {
      shards.push([]);
      filled = 0;
    }
    shards[shards.length - 1]!.push(entry);
    filled += bytes;
  }
  const name = (i: number): string => `${prefix}-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    writeSafetensors(join(dir, name(i)), new Map(shard), metadata);
    for (const [tensor] of shard) weightMap[tensor] = name(i);
  });
  const index = { metadata: { ...metadata, total_size: total }, weight_map: weightMap };
  writeFileAtomic(join(dir, `${prefix}.safetensors.index.json`), `${JSON.stringify(index, null, 2)}\n`);
  return [...shards.map((_, i) => name(i)), `${prefix}.safetensors.index.json`];
}

/** Reads and validates a safetensors file (or a shard index), every tensor into memory. */
export function readSafetensors(path: string): SafetensorsFile {
  const reader = path.endsWith('.index.json') ? openShardedSafetensors(path) : openSafetensors(path);
  try {
    const tensors = new Map<string, StTensor>();
    for (const name of reader.tensors.keys()) tensors.set(name, reader.read(name));
    return { tensors, metadata: { ...reader.metadata } };
  } finally {
    reader.close();
  }
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

function failIn(file: string): (message: string) => never {
  return (message) => {
    throw new Error(`${file}: ${message}`);
  };
}

/** Reads exactly `buffer.length` bytes at `position`; a file shorter than its header says is an error naming it. */
function readFully(fd: number, buffer: Uint8Array, position: number, path: string): void {
  for (let done = 0; done < buffer.length; ) {
    const n = withPath(path, () => readSync(fd, buffer, done, Math.min(READ_CHUNK, buffer.length - done), position + done));
    if (n === 0) throw new Error(`${path}: the file ends at byte ${position + done}, before the data its header describes`);
    done += n;
  }
}

function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

let zeros: Buffer | null = null;

/** Whether a chunk is all zero bytes (memcmp speed). */
function isZero(chunk: Uint8Array): boolean {
  zeros ??= Buffer.alloc(WRITE_CHUNK);
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).equals(zeros.subarray(0, chunk.byteLength));
}
