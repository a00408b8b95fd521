/**
 * One `ptr run` per run folder: an exclusive lock file, `<run>/.lock`, holding the
 * owner's pid, host and start time. It is created with O_EXCL, so of two runs
 * starting together exactly one gets it; the other fails at once naming the
 * holder. A lock whose process is gone (killed with SIGKILL, a crashed machine)
 * is stale and taken over, after checking it is still the lock that was found
 * stale, so two runs taking over the same stale lock cannot both win.
 */
import { closeSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileSystemError, UserError } from './errors.js';

/** The lock file's name inside a run folder. */
export const LOCK_FILE = '.lock';

/** What a lock file says about its owner. */
export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  /** ISO time the lock was taken. */
  readonly since: string;
  /** Unique per acquisition: tells this lock from a later one by a process with a reused pid. */
  readonly token: string;
}

/** The run folder is in use by another live `ptr run`. */
export class RunFolderBusyError extends UserError {
  constructor(
    readonly runDir: string,
    readonly owner: LockOwner,
  ) {
    super(
      `${runDir} is in use by another ptr run (pid ${owner.pid} on ${owner.host}, since ${owner.since}); ` +
        `wait for it to finish, stop it, or give --out a different folder`,
    );
  }
}

/** A held lock; `release()` removes the lock file (idempotent). */
export interface RunLock {
  readonly path: string;
  readonly owner: LockOwner;
  release(): void;
}

/**
 * Takes the lock of `runDir` (which must exist) or throws RunFolderBusyError
 * naming the live holder. A stale lock (its process gone) is taken over.
 */
export function acquireRunLock(runDir: string): RunLock {
  const path = join(runDir, LOCK_FILE);
  const owner: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token: randomBytes(8).toString('hex') };
  for (let attempt = 0; attempt < 5; attempt++) {
    if (tryCreate(path, owner)) return heldLock(path, owner);
    const holder = readOwner(path);
    if (holder === undefined) continue; // released between our create and our read: try again
    if (holder !== null && isAlive(holder)) throw new RunFolderBusyError(runDir, holder);
    takeOverStale(path, holder);
  }
  const holder = readOwner(path);
  throw new RunFolderBusyError(runDir, holder ?? { pid: 0, host: 'unknown', since: 'unknown', token: '' });
}

/** Reads who holds the lock at `path` (for messages): null for an unreadable lock file, undefined for none. */
export function readOwner(path: string): LockOwner | null | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    if (typeof v.pid === 'number' && Number.isSafeInteger(v.pid) && typeof v.host === 'string' && typeof v.since === 'string' && typeof v.token === 'string') {
      return { pid: v.pid, host: v.host, since: v.since, token: v.token };
    }
  } catch {
    // A lock file cut short by a kill between create and write: no owner to wait for.
  }
  return null;
}

function tryCreate(path: string, owner: LockOwner): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fileSystemError(e, path) ?? e;
  }
  try {
    writeSync(fd, `${JSON.stringify(owner)}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Whether the lock's process still runs. A lock from another host cannot be checked, so it counts as alive. */
function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true;
  if (owner.pid === process.pid) return true; // this process: another run in it holds the folder
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes a stale lock — only if it is still the one found stale: it is first
 * renamed aside (atomic, so one taker wins), then checked; a live lock renamed
 * by mistake (a new owner got in between) is put back.
 */
function takeOverStale(path: string, stale: LockOwner | null): void {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // another taker was first
    throw e;
  }
  const moved = readOwner(aside);
  const same = moved === null ? stale === null : moved !== undefined && stale !== null && moved.token === stale.token;
  if (same) {
    unlinkSync(aside);
    return;
  }
  // Someone took the lock between our read and our rename: give it back (link fails rather
  // than replace a lock a third run may hold by now).
  try {
    linkSync(aside, path);
  } catch {
    // A third run holds it: the one we moved is lost to its owner, which finds out on release.
  }
  unlinkSync(aside);
}

function heldLock(path: string, owner: LockOwner): RunLock {
  let held = true;
  return {
    path,
    owner,
    release() {
      if (!held) return;
      held = false;
      // Only our own lock: never one another run took over after ours was judged stale.
      if (readOwner(path)?.token === owner.token) {
        try {
          unlinkSync(path);
        } catch {
          // Already gone.
        }
      }
    },
  };
}
