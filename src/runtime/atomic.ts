/**
 * Atomic file writes for checkpoints, manifests and anything else a killed run
 * must never leave half-written: the data goes to a temporary file beside the
 * target, is fsynced, and is renamed over the target. A reader sees either the
 * old file or the new one, never a mixture.
 */
import { closeSync, existsSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { withPath } from './errors.js';

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Exact permission bits of the new file (umask not applied); default 0o644 less the umask. */
  readonly mode?: number;
}

/** Writes `data` to `path` atomically (same-directory temp file, fsync, rename, directory fsync). */
export function writeFileAtomic(path: string, data: Uint8Array | string, options: AtomicWriteOptions = {}): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  writeFileAtomicWith(
    path,
    (fd) => {
      let written = 0;
      while (written < bytes.byteLength) written += writeSync(fd, bytes, written, bytes.byteLength - written);
    },
    options,
  );
}

/**
 * Creates `path` atomically with the bytes `write` puts into the open file (any
 * size, written in pieces): a temp file beside it, fsync, rename, directory
 * fsync. A failure (a full disk) removes the temp file and throws a
 * FileSystemError naming `path` and what to do.
 */
export function writeFileAtomicWith(path: string, write: (fd: number) => void, options: AtomicWriteOptions = {}): void {
  const dir = dirname(path);
  // Same directory, so the rename never crosses a file system; the random part keeps
  // concurrent writers (and leftovers of a killed one) from colliding.
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  withPath(path, () => {
    // Created private when a mode is given, so the file is never more open than asked for.
    const fd = openSync(temp, 'wx', options.mode === undefined ? 0o644 : 0o600);
    let renamed = false;
    try {
      try {
        if (options.mode !== undefined) fchmodSync(fd, options.mode);
        write(fd);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, path);
      renamed = true;
    } finally {
      if (!renamed) {
        try {
          unlinkSync(temp);
        } catch {
          // Already gone: nothing to clean up.
        }
      }
    }
  }, { replacePath: true });
  syncDirectory(dir);
}

/** Writes `value` as 2-space JSON with a trailing newline, atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * `mkdir -p` that fails with the real reason: Node's recursive mkdir reports ENOENT on
 * a read-only file system, so the missing folders are made one by one, from the top.
 * Errors are FileSystemErrors naming the folder.
 */
export function makeDirs(path: string): void {
  const missing: string[] = [];
  for (let p = path; !existsSync(p); p = dirname(p)) {
    missing.push(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing.reverse()) {
    withPath(p, () => {
      try {
        mkdirSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // made meanwhile by another process
      }
    });
  }
}

/** Makes the rename durable; best effort, since some platforms cannot open or fsync a directory. */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Not supported here (e.g. Windows): the rename itself is still atomic.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
