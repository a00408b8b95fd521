/**
 * A run folder's identity: `run.json` records which recipe made the run, a
 * random run id, and, per stage, a fingerprint of what produced its weights (the
 * recipe and the files it imports, the data files, seed, steps, pt-recipe
 * version). `ptr run` into a folder that already holds a run is refused unless the
 * user says what to do with it (`--resume` continues it, `--fresh` archives it);
 * `--resume` compares each stage's checkpoint with the current fingerprint and
 * refuses, naming what changed, unless `--allow-changed`.
 *
 *   runs/x/run.json                     { format, id, recipe, created, version, stages }
 *   runs/x/.lock                        the live `ptr run`'s pid (runLock.ts)
 *   runs/x/metrics.jsonl, checkpoints/, <stage>/model/
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, relative } from 'node:path';
import { writeJsonAtomic } from './atomic.js';
import { UserError, withPath } from './errors.js';
import { LOCK_FILE } from './runLock.js';

/** The run record's file name in a run folder. */
export const RUN_FILE = 'run.json';
const RUN_FORMAT = 1;

/** Size and content hash of one input file. */
export interface FileFingerprint {
  readonly bytes: number;
  readonly sha256: string;
}

/** What produced a stage's weights; two runs with equal fingerprints compute the same steps. */
export interface StageFingerprint {
  /** The pt-recipe version (it covers the standard library and every lowering rule). */
  readonly version: string;
  readonly steps: number | null;
  readonly seed: number | null;
  /** sha256 of the recipe and every file it imports, outside the standard library. */
  readonly recipe: string;
  /** The data and tokenizer files the stage reads, by path relative to the recipe's folder. */
  readonly data: Readonly<Record<string, FileFingerprint>>;
}

/** `run.json`. */
export interface RunRecord {
  readonly format: number;
  /** Random, per run: checkpoints carry it, so only the current run's are ever pruned. */
  readonly id: string;
  /** Absolute path of the recipe file. */
  readonly recipe: string;
  /** ISO time the run was created. */
  readonly created: string;
  readonly version: string;
  /** Each stage's fingerprint when it last started. */
  readonly stages: Readonly<Record<string, StageFingerprint>>;
}

/** The folder holds a run `ptr run` must not silently overwrite or mix with. */
export class RunFolderError extends UserError {}

/** sha256 of a file, read in chunks (any size, bounded memory). */
export function fileFingerprint(path: string): FileFingerprint {
  return withPath(path, () => {
    const hash = createHash('sha256');
    const fd = openSync(path, 'r');
    try {
      const chunk = Buffer.allocUnsafe(1 << 20);
      let bytes = 0;
      for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) {
        hash.update(chunk.subarray(0, n));
        bytes += n;
      }
      return { bytes, sha256: hash.digest('hex') };
    } finally {
      closeSync(fd);
    }
  });
}

/**
 * The fingerprint of a stage: `sources` are the recipe and its imports (absolute
 * paths; their texts are hashed together in path order), `dataFiles` the files it
 * reads (absolute; a file not written yet, like a generate stage's output, is left
 * out), named relative to `baseDir`.
 */
export function stageFingerprint(options: {
  readonly version: string;
  readonly steps: number | null;
  readonly seed: number | null;
  readonly sources: readonly string[];
  readonly dataFiles: readonly string[];
  readonly baseDir: string;
}): StageFingerprint {
  const recipe = createHash('sha256');
  for (const file of [...new Set(options.sources)].sort()) {
    recipe.update(`${relativeName(options.baseDir, file)}\0`);
    recipe.update(fileFingerprint(file).sha256);
  }
  const data: Record<string, FileFingerprint> = {};
  for (const file of [...new Set(options.dataFiles)].sort()) {
    if (!file || !existsSync(file)) continue;
    data[relativeName(options.baseDir, file)] = fileFingerprint(file);
  }
  return { version: options.version, steps: options.steps, seed: options.seed, recipe: recipe.digest('hex'), data };
}

/**
 * What differs between the fingerprint a checkpoint was written with and the
 * current one, in words (`steps 12 → 40`); empty when nothing does. Fields the
 * old fingerprint lacks (checkpoints of older versions) are not compared.
 */
export function fingerprintChanges(before: Partial<StageFingerprint>, now: StageFingerprint): string[] {
  const changes: string[] = [];
  if (before.steps !== undefined && before.steps !== now.steps) changes.push(`steps ${before.steps} → ${now.steps}`);
  if (before.seed !== undefined && before.seed !== now.seed) changes.push(`seed ${before.seed} → ${now.seed}`);
  if (before.recipe !== undefined && before.recipe !== now.recipe) changes.push('the recipe (or a file it imports) was edited');
  if (before.data !== undefined) {
    for (const [name, was] of Object.entries(before.data)) {
      const is = now.data[name];
      if (!is) changes.push(`data ${name} is no longer read`);
      else if (is.sha256 !== was.sha256) changes.push(`data ${name} changed (${was.bytes.toLocaleString('en-US')} → ${is.bytes.toLocaleString('en-US')} bytes)`);
    }
    for (const name of Object.keys(now.data)) if (!(name in before.data)) changes.push(`data ${name} is read now, not before`);
  }
  if (before.version !== undefined && before.version !== now.version) changes.push(`pt-recipe ${before.version} → ${now.version}`);
  return changes;
}

/** Reads a run folder's run.json; null when there is none. A damaged one is a RunFolderError. */
export function readRunRecord(runDir: string): RunRecord | null {
  const file = join(runDir, RUN_FILE);
  if (!existsSync(file)) return null;
  let v: Partial<RunRecord>;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as Partial<RunRecord>;
  } catch (e) {
    throw new RunFolderError(`${file}: not valid JSON (${(e as Error).message}); move the run folder away or give --fresh`);
  }
  const ok =
    v !== null && typeof v === 'object' && v.format === RUN_FORMAT && typeof v.id === 'string' && /^[0-9a-f]{8,64}$/.test(v.id) &&
    typeof v.recipe === 'string' && typeof v.created === 'string' && typeof v.version === 'string' &&
    v.stages !== null && typeof v.stages === 'object' && !Array.isArray(v.stages);
  if (!ok) throw new RunFolderError(`${file}: not a run record of this pt-recipe (expected format ${RUN_FORMAT} with id, recipe, created, version, stages); move the run folder away or give --fresh`);
  return v as RunRecord;
}

/** Writes run.json atomically. */
export function writeRunRecord(runDir: string, record: RunRecord): void {
  withPath(join(runDir, RUN_FILE), () => writeJsonAtomic(join(runDir, RUN_FILE), record));
}

/** A new run record with a fresh id. */
export function newRunRecord(recipe: string, version: string): RunRecord {
  return { format: RUN_FORMAT, id: randomBytes(8).toString('hex'), recipe, created: new Date().toISOString(), version, stages: {} };
}

/** What a run folder holds from earlier runs. */
export interface RunFolderContents {
  readonly record: RunRecord | null;
  /** Stages with checkpoint folders. */
  readonly checkpointed: readonly string[];
  readonly hasMetrics: boolean;
}

/** Looks at what a run folder holds (it may not exist). */
export function inspectRunFolder(runDir: string): RunFolderContents {
  const record = readRunRecord(runDir);
  const root = join(runDir, 'checkpoints');
  const checkpointed = existsSync(root)
    ? readdirSync(root).filter((stage) => {
        try {
          return readdirSync(join(root, stage)).some((f) => /^step-\d+$/.test(f));
        } catch {
          return false;
        }
      })
    : [];
  const metrics = join(runDir, 'metrics.jsonl');
  return { record, checkpointed, hasMetrics: existsSync(metrics) && statSync(metrics).size > 0 };
}

/** Whether the folder holds anything of an earlier run. */
export function holdsRun(contents: RunFolderContents): boolean {
  return contents.record !== null || contents.checkpointed.length > 0 || contents.hasMetrics;
}

/**
 * Moves everything in `runDir` except its lock into a new sibling folder,
 * `<runDir>.archived-<time>`, and returns that folder's path. Each entry is renamed
 * (no copy), so archiving is quick and a kill midway loses nothing.
 */
export function archiveRunFolder(runDir: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
  let archive = `${runDir.replace(/[/\\]+$/, '')}.archived-${stamp}`;
  for (let n = 2; existsSync(archive); n++) archive = `${runDir.replace(/[/\\]+$/, '')}.archived-${stamp}-${n}`;
  withPath(archive, () => mkdirSync(archive));
  for (const entry of readdirSync(runDir)) {
    if (entry === LOCK_FILE) continue;
    withPath(join(runDir, entry), () => renameSync(join(runDir, entry), join(archive, entry)));
  }
  return archive;
}

/**
 * Removes what killed writes left behind: checkpoint folders being written
 * (`checkpoints/<stage>/.step-000200.tmp-<pid>`) and atomic-write temp files
 * (`.name.<pid>.<random>.tmp`), anywhere under the run folder. Only called with the
 * folder's lock held, so no live writer owns them. Returns the paths removed.
 */
export function removeLeftoverTemps(runDir: string): string[] {
  const removed: string[] = [];
  const visit = (dir: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (isLeftoverTemp(e.name)) {
        rmSync(path, { recursive: true, force: true });
        removed.push(path);
      } else if (e.isDirectory() && depth < 4) visit(path, depth + 1);
    }
  };
  visit(runDir, 0);
  return removed;
}

/** Names of the temporaries checkpoint.ts, atomic.ts and safetensors.ts write before renaming. */
export function isLeftoverTemp(name: string): boolean {
  return /^\..+\.tmp-\d+$/.test(name) || /^\..+\.\d+\.[0-9a-f]+\.tmp$/.test(name) || /^\.lock\.stale-/.test(name);
}

/** `data/corpus.txt` for a file under the recipe's folder, else the absolute path. */
function relativeName(baseDir: string, file: string): string {
  const rel = relative(baseDir, file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel.split('\\').join('/') : file;
}

/** `runs/x` described for messages: what it holds. */
export function describeRun(runDir: string, contents: RunFolderContents): string {
  const parts: string[] = [];
  if (contents.record) parts.push(`a run of ${basename(contents.record.recipe)} started ${contents.record.created}`);
  if (contents.checkpointed.length) parts.push(`checkpoints of ${contents.checkpointed.join(', ')}`);
  else if (contents.hasMetrics) parts.push('metrics.jsonl');
  return `${runDir} already holds ${parts.join(' with ') || 'an earlier run'}`;
}

