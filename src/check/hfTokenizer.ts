/**
 * What `hf(...)` reads besides tokenizer.json: the tokenizer_config.json beside
 * it (or, in older folders, special_tokens_map.json), whose `bos_token`,
 * `eos_token`, `pad_token`, `unk_token`, `sep_token` and `mask_token` name the
 * model's own special tokens. They become the tokenizer's
 * specials with the ids tokenizer.json gives them (so prompts get the bos and
 * eos the model was trained with, and no new ids appear that a pretrained
 * model has no embeddings for). The checker and the runtime both read the
 * files through these functions, so they agree on every id.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** tokenizer_config.json's key for each special-token name a recipe uses (`specials: [eos]`). */
const CONFIG_KEYS: Readonly<Record<string, string>> = {
  bos: 'bos_token',
  eos: 'eos_token',
  pad: 'pad_token',
  unk: 'unk_token',
  sep: 'sep_token',
  mask: 'mask_token',
};

/**
 * The tokenizer.json an `hf(...)` path names: a path ending in .json is the file
 * itself, any other is a folder holding tokenizer.json (a model folder, say).
 * Decided by the text alone, so lowering (which reads no files) agrees.
 */
export function tokenizerJsonPath(path: string): string {
  return path.endsWith('.json') ? path : join(path, 'tokenizer.json');
}

/** The special tokens tokenizer_config.json names, with their ids; `missing` lists those tokenizer.json has no id for. */
export interface ConfigSpecials {
  /** By recipe name (`eos`): the token text and its id. */
  readonly ids: ReadonlyMap<string, { readonly token: string; readonly id: number }>;
  readonly missing: readonly { readonly key: string; readonly token: string }[];
  /** The config file read, or null when there is none beside tokenizer.json. */
  readonly file: string | null;
}

/**
 * Reads the tokenizer_config.json (or special_tokens_map.json) beside a
 * tokenizer.json (neither: no specials); a key tokenizer_config.json has, even
 * null, wins. Throws an Error naming the file when it is not valid JSON.
 */
export function readConfigSpecials(tokenizerJsonFile: string, tokenizerJson: unknown): ConfigSpecials {
  const dir = dirname(tokenizerJsonFile);
  const config = readJson(join(dir, 'tokenizer_config.json'));
  // Older folders (GPT-2's) name their special tokens in special_tokens_map.json instead.
  const map = readJson(join(dir, 'special_tokens_map.json'));
  if (config === undefined && map === undefined) return { ids: new Map(), missing: [], file: null };
  const ids = new Map<string, { token: string; id: number }>();
  const missing: { key: string; token: string }[] = [];
  for (const [name, key] of Object.entries(CONFIG_KEYS)) {
    const fromConfig = (config as Record<string, unknown> | null | undefined)?.[key];
    const token = tokenText(fromConfig !== undefined ? fromConfig : (map as Record<string, unknown> | null | undefined)?.[key]);
    if (token === null) continue;
    const id = tokenId(tokenizerJson, token);
    if (id === null) missing.push({ key, token });
    else ids.set(name, { token, id });
  }
  return { ids, missing, file: config !== undefined ? join(dir, 'tokenizer_config.json') : join(dir, 'special_tokens_map.json') };
}

/** A JSON file's value; undefined when there is no such file. Throws an Error naming the file when it is not JSON. */
function readJson(file: string): unknown {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A special token as tokenizer_config.json writes it: a string, or an AddedToken object with `content`. */
function tokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  const content = (value as { content?: unknown } | null)?.content;
  return typeof content === 'string' ? content : null;
}

/** The id tokenizer.json gives a token: an added token's, else the model vocabulary's. */
function tokenId(tokenizerJson: unknown, token: string): number | null {
  const json = tokenizerJson as { added_tokens?: { id?: unknown; content?: unknown }[]; model?: { vocab?: unknown } } | null;
  const added = json?.added_tokens?.find((t) => t.content === token);
  if (added && typeof added.id === 'number') return added.id;
  const vocab = json?.model?.vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [token, score] pairs, the id is the index.
    const index = vocab.findIndex((entry) => Array.isArray(entry) && entry[0] === token);
    return index >= 0 ? index : null;
  }
  const id = vocab && typeof vocab === 'object' ? (vocab as Record<string, unknown>)[token] : undefined;
  return typeof id === 'number' ? id : null;
}
