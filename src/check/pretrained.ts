/**
 * `pretrained("DIR")`: a Hugging Face checkpoint folder as a model. At check
 * time it reads DIR/config.json (so every shape is known to the checker),
 * picks the architecture by `model_type` (pretrainedArchitectures.ts), and
 * builds the std.nn block that architecture maps to with the config's sizes.
 * When the folder has weights (model.safetensors, or shards listed in
 * model.safetensors.index.json) it reads their headers — not the weights —
 * and checks that every tensor the config implies is there, in a float dtype
 * and of the shape the config gives. Lowering and the runtime read the result
 * from the checker's facts (`PretrainedFacts`), never the folder.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BlockDecl } from '../language/ast.js';
import type { DiagnosticOptions } from '../language/diagnostics.js';
import type { CallSite, DataFile } from './builtins.js';
import { constDim } from './dims.js';
import { displayPath, type ModuleInfo, type PretrainedFacts } from './modules.js';
import { architectureFor, SUPPORTED_MODEL_TYPES, type BlockChoice, type ConfigReader, type HfArchitecture, type PretrainedTensor } from './pretrainedArchitectures.js';
import { ERROR, describeKind, type ModelInstance, type Ty } from './types.js';

/** Float dtypes a checkpoint's weights may have (converted to f32 when read). */
export const WEIGHT_DTYPES: readonly string[] = ['F32', 'F16', 'BF16'];

/** What pretrained(...) needs from the checker (CheckServices provides it). */
export interface PretrainedServices {
  readDataFile(path: string, span: CallSite['span']): DataFile | null;
  /** Block `block` of the standard library module std.`module`, loaded if no recipe imports it; null when missing (reported at `site`). */
  stdBlock(module: string, block: string, site: CallSite): { readonly decl: BlockDecl; readonly module: ModuleInfo } | null;
  /** Instantiates a block with every argument given, as a call at `site` would. */
  instantiate(decl: BlockDecl, module: ModuleInfo, args: ReadonlyMap<string, Ty>, site: CallSite): ModelInstance | null;
  /** Records what pretrained(...) read (ModuleInfo.facts.pretrained). */
  notePretrained(facts: PretrainedFacts): void;
}

const SAME_MODEL: DiagnosticOptions = { hint: 'the weights and config.json must come from the same model' };

/** Bytes per element of the safetensors dtypes whose size is fixed. */
const ELEMENT_BYTES: Readonly<Record<string, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** The largest safetensors header read (the format's own limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/** The type rule of `pretrained(path)`: the model DIR/config.json describes (see the file comment). */
export function pretrainedRule(site: CallSite, services: PretrainedServices): Ty {
  const arg = site.args.get('path')!;
  if (arg.ty.k === 'error') return ERROR;
  if (arg.ty.k !== 'str' || arg.ty.value === null) {
    site.report('type-mismatch', `pretrained: the path must be a string naming a Hugging Face checkpoint folder, but '${arg.text}' is ${describeKind(arg.ty)}`, arg.span);
    return ERROR;
  }
  const path = arg.ty.value;
  const configFile = services.readDataFile(join(path, 'config.json'), arg.span);
  if (!configFile) return ERROR;
  const dir = dirname(configFile.absPath);
  const shown = displayPath(configFile.absPath);
  const report: Reporter = (code, message, options = {}) => site.report(code, `pretrained: ${message}`, arg.span, options);
  let config: unknown;
  try {
    config = JSON.parse(configFile.text);
  } catch (e) {
    report('bad-pretrained-config', `${shown} is not valid JSON: ${(e as Error).message}`);
    return ERROR;
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    report('bad-pretrained-config', `${shown} must hold a JSON object`);
    return ERROR;
  }
  const json = config as Record<string, unknown>;
  const modelType = json['model_type'];
  if (typeof modelType !== 'string') {
    report('bad-pretrained-config', `${shown} has no "model_type" (a string such as "llama"), so its architecture is unknown`);
    return ERROR;
  }
  const arch = architectureFor(modelType);
  if (!arch) {
    report('unsupported-architecture', `"model_type": ${JSON.stringify(modelType)} in ${shown} is not an architecture pt-recipe builds`, { hint: `supported: ${SUPPORTED_MODEL_TYPES.join(', ')}` });
    return ERROR;
  }
  const choice = arch.choose(configReader(json, shown, (m) => report('bad-pretrained-config', m)), modelType);
  if (!choice) return ERROR;
  const block = services.stdBlock('nn', choice.block, site);
  if (!block) return ERROR;
  const tensors = readWeights(dir, arch, choice, report);
  if (tensors === 'failed') return ERROR;
  const model = services.instantiate(block.decl, block.module, blockArgs(block.decl, choice), site);
  if (!model) return ERROR;
  services.notePretrained({ dir, modelType, choice, block, config: json, tensors });
  return { k: 'model', model };
}

/** The block arguments as the checker's constants: dims and floats by the block's declared parameter types. */
function blockArgs(decl: BlockDecl, choice: BlockChoice): Map<string, Ty> {
  const out = new Map<string, Ty>();
  for (const p of decl.params) {
    const v = choice.args.get(p.name.name);
    if (v === undefined) throw new Error(`pretrained: the architecture table gives no value for ${decl.name.name}'s argument '${p.name.name}'`);
    const type = p.type?.kind === 'TensorTypeNode' ? p.type.name.name : '';
    out.set(p.name.name, typeof v === 'boolean' ? { k: 'bool', value: v } : type === 'float' ? { k: 'float', value: v } : { k: 'int', value: constDim(v) });
  }
  return out;
}

/** Reads typed keys of a config.json; every failure names the file and the key. */
function configReader(json: Record<string, unknown>, file: string, fail: (message: string) => void): ConfigReader {
  const present = (key: string): boolean => json[key] !== undefined && json[key] !== null;
  const bad = (key: string, want: string): null => {
    fail(`${file}: "${key}" must be ${want}, but it is ${JSON.stringify(json[key])}`);
    return null;
  };
  const missing = (key: string, want: string): null => {
    fail(`${file} has no "${key}" (${want})`);
    return null;
  };
  return {
    int(key, fallback, min = 1) {
      if (!present(key)) return fallback ?? missing(key, `an integer of at least ${min}`);
      const v = json[key];
      return typeof v === 'number' && Number.isSafeInteger(v) && v >= min ? v : bad(key, `an integer of at least ${min}`);
    },
    number(key, fallback) {
      if (!present(key)) return fallback ?? missing(key, 'a number');
      const v = json[key];
      return typeof v === 'number' && Number.isFinite(v) ? v : bad(key, 'a number');
    },
    bool(key, fallback) {
      if (!present(key)) return fallback;
      const v = json[key];
      return typeof v === 'boolean' ? v : bad(key, 'true or false');
    },
    oneOf(key, allowed, fallback) {
      if (!present(key)) return fallback;
      const v = json[key];
      if (typeof v === 'string' && allowed.includes(v)) return v;
      fail(`${file}: "${key}" is ${JSON.stringify(v)}, which pt-recipe does not build (it builds ${allowed.map((a) => JSON.stringify(a)).join(', ')})`);
      return null;
    },
    unsupported(key, allowed, why) {
      if (!present(key) || allowed.some((a) => JSON.stringify(a) === JSON.stringify(json[key]))) return true;
      fail(`${file}: "${key}": ${JSON.stringify(json[key])} is not supported: ${why}`);
      return false;
    },
    raw: (key) => json[key],
    fail: (_key, message) => fail(`${file}: ${message}`),
  };
}

// ------------------------------------------------------------------ weights

/** A tensor's entry in a safetensors header: dtype, shape, and where its bytes lie in its file. */
interface HeaderEntry {
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Byte offsets in the file. */
  readonly begin: number;
  readonly end: number;
}

/** A tensor of a checkpoint folder and the file that holds it. */
interface CheckpointEntry extends HeaderEntry {
  readonly file: string;
}

/** What a checkpoint folder holds: its tensors, or no weights (and a PyTorch file, if that is what it has). */
type CheckpointContents = { readonly tensors: ReadonlyMap<string, CheckpointEntry> } | { readonly tensors: null; readonly torchFile: string | null };

type Reporter = (code: string, message: string, options?: DiagnosticOptions) => void;

/**
 * The tensors of a checkpoint folder, from the headers of DIR/model.safetensors
 * or of the shards DIR/model.safetensors.index.json lists (no weights are read).
 * Throws an Error naming the file and the problem when a file is malformed or
 * the index disagrees with its shards.
 */
function readCheckpointContents(dir: string): CheckpointContents {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return { tensors: new Map([...readSafetensorsHeader(single)].map(([k, v]) => [k, { ...v, file: single }])) };
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!existsSync(indexPath)) {
    const torchFile = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) => existsSync(join(dir, f))) ?? null;
    return { tensors: null, torchFile };
  }
  const shown = displayPath(indexPath);
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new Error(`${shown} is not valid JSON: ${(e as Error).message}`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map) || Object.values(map as object).some((f) => typeof f !== 'string')) {
    throw new Error(`${shown} has no "weight_map" of tensor names to file names`);
  }
  const byFile = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map as Record<string, string>)) {
    if (file.includes('/') || file.includes('\\') || !existsSync(join(dir, file))) throw new Error(`${shown} names the shard "${file}", which is not a file in ${displayPath(dir)}`);
    byFile.set(file, [...(byFile.get(file) ?? []), name]);
  }
  const tensors = new Map<string, CheckpointEntry>();
  for (const [file, names] of byFile) {
    const path = join(dir, file);
    const header = readSafetensorsHeader(path);
    for (const name of names) {
      const entry = header.get(name);
      if (!entry) throw new Error(`${shown} puts tensor "${name}" in ${displayPath(path)}, which does not hold it`);
      tensors.set(name, { ...entry, file: path });
    }
  }
  return { tensors };
}

/**
 * The checkpoint's tensors by parameter name, checked against the architecture's
 * table; null when the folder has no weights (a warning), 'failed' after an error.
 */
function readWeights(dir: string, arch: HfArchitecture, choice: BlockChoice, report: Reporter): Map<string, PretrainedTensor> | null | 'failed' {
  let contents: CheckpointContents;
  try {
    contents = readCheckpointContents(dir);
  } catch (e) {
    report('pretrained-weights', (e as Error).message);
    return 'failed';
  }
  if (contents.tensors === null) {
    if (contents.torchFile) {
      report('pretrained-weights', `${displayPath(dir)} has ${contents.torchFile} but no model.safetensors; pt-recipe reads safetensors only`, {
        hint: 'convert it once with transformers: AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)',
      });
      return 'failed';
    }
    report('pretrained-no-weights', `${displayPath(dir)} has config.json but no weights (model.safetensors or model.safetensors.index.json); this is enough for ptr check, but training or deploying the model needs them`, { severity: 'warning' });
    return null;
  }
  const entries = contents.tensors;
  const rules = arch.tensors(choice);
  // A file may name every tensor with a prefix (GPT-2: `transformer.h.0...`, as GPT2LMHeadModel saves).
  const prefix = ['', ...arch.prefixes].find((p) => entries.has(p + rules[0]!.hf)) ?? '';
  const out = new Map<string, PretrainedTensor>();
  const missing: string[] = [];
  for (const rule of rules) {
    const name = prefix + rule.hf;
    const entry = entries.get(name);
    if (!entry) {
      missing.push(name);
      continue;
    }
    const where = `tensor "${name}" in ${displayPath(entry.file)}`;
    if (!WEIGHT_DTYPES.includes(entry.dtype)) {
      report('pretrained-weights', `${where} is ${entry.dtype}; weights must be ${WEIGHT_DTYPES.join(', ')}`, { hint: 'quantized checkpoints are not read yet: use the full-precision one' });
      return 'failed';
    }
    if (entry.shape.length !== rule.shape.length || entry.shape.some((d, i) => d !== rule.shape[i])) {
      report('pretrained-weights', `${where} has shape [${entry.shape.join(', ')}], but config.json gives [${rule.shape.join(', ')}]`, SAME_MODEL);
      return 'failed';
    }
    out.set(rule.param, { ...rule, name, file: entry.file, dtype: entry.dtype });
  }
  if (missing.length) {
    const shown = missing.slice(0, 3).map((m) => `"${m}"`).join(', ');
    report('pretrained-weights', `the checkpoint in ${displayPath(dir)} has no tensor ${shown}${missing.length > 3 ? ` (and ${missing.length - 3} more)` : ''}, which config.json implies`, SAME_MODEL);
    return 'failed';
  }
  const used = new Set([...out.values()].map((t) => t.name));
  const extra = [...entries.keys()].filter((n) => !used.has(n) && !arch.skipped.test(n));
  if (extra.length) {
    const shown = extra.slice(0, 3).map((m) => `"${m}"`).join(', ');
    report('pretrained-extra-tensors', `the checkpoint in ${displayPath(dir)} has tensors the ${choice.block} model does not use: ${shown}${extra.length > 3 ? ` (and ${extra.length - 3} more)` : ''}; they are ignored`, { severity: 'warning' });
  }
  return out;
}

/**
 * A safetensors file's header: each tensor's dtype and shape, read without
 * its data. Throws an Error naming the file and what is wrong.
 */
function readSafetensorsHeader(path: string): Map<string, HeaderEntry> {
  const shown = displayPath(path);
  const fd = openSync(path, 'r');
  try {
    const fileSize = statSync(path).size;
    const head = Buffer.alloc(8);
    if (fileSize < 8 || readSync(fd, head, 0, 8, 0) !== 8) throw new Error(`${shown} is too short to be a safetensors file`);
    const length = Number(head.readBigUInt64LE(0));
    if (length > MAX_HEADER_BYTES || 8 + length > fileSize) throw new Error(`${shown} is not a safetensors file (its header length ${length} exceeds the file)`);
    const text = Buffer.alloc(length);
    readSync(fd, text, 0, length, 8);
    let header: unknown;
    try {
      header = JSON.parse(text.toString('utf8'));
    } catch (e) {
      throw new Error(`${shown}: the safetensors header is not valid JSON: ${(e as Error).message}`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new Error(`${shown}: the safetensors header must be a JSON object`);
    const dataStart = 8 + length;
    const out = new Map<string, HeaderEntry>();
    for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') continue;
      const { dtype, shape, data_offsets: offsets } = (value ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const valid =
        typeof dtype === 'string' &&
        Array.isArray(shape) &&
        shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0) &&
        Array.isArray(offsets) &&
        offsets.length === 2 &&
        offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) &&
        (offsets[1] as number) >= (offsets[0] as number) &&
        dataStart + (offsets[1] as number) <= fileSize;
      if (!valid) throw new Error(`${shown}: the header entry of tensor "${name}" is malformed or points past the end of the file`);
      const size = ELEMENT_BYTES[dtype as string];
      const bytes = (offsets[1] as number) - (offsets[0] as number);
      if (size !== undefined && bytes !== size * (shape as number[]).reduce((a, d) => a * d, 1)) {
        throw new Error(`${shown}: tensor "${name}" is ${dtype as string}[${(shape as number[]).join(', ')}] but its data is ${bytes} bytes`);
      }
      out.set(name, { dtype: dtype as string, shape: shape as number[], begin: dataStart + (offsets as number[])[0]!, end: dataStart + (offsets as number[])[1]! });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
