/**
 * The one line between a user's mistake and a bug in pt-recipe. Every error that
 * bad input or a bad environment can cause (a data file, a checkpoint, a device, a
 * prompt, a full disk) extends UserError; `ptr` reports those in one line with their
 * exit code (1 unless they say otherwise), and anything else as an internal error
 * (exit 70) that asks to be reported.
 */

/** Bad input or a bad environment, never a bug: the message names the file (and line) and what was expected. */
export class UserError extends Error {
  /** The process exit code `ptr` ends with: 1 for problems in the input or the environment. */
  readonly exitCode: number = 1;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    // The subclass's own name (DataError, EncodeError, …), for logs and stack traces.
    this.name = new.target.name;
  }
}

/**
 * What each errno a file system call can fail with means, and what the user can
 * do about it. Codes missing here are not the environment's fault as far as we
 * know, and stay internal errors.
 */
const FILE_SYSTEM_PROBLEMS: Readonly<Record<string, { readonly why: string; readonly todo: string }>> = {
  ENOSPC: { why: 'no space left on the device', todo: 'free some space (old run folders, checkpoints) or give --out on another disk, then run again with --resume' },
  EDQUOT: { why: 'disk quota exceeded', todo: 'free some space or give --out on another disk, then run again with --resume' },
  EROFS: { why: 'read-only file system', todo: 'give --out a folder on a writable disk' },
  EACCES: { why: 'permission denied', todo: 'check the permissions of the path (or give --out a folder you can write)' },
  EPERM: { why: 'operation not permitted', todo: 'check the permissions of the path (or give --out a folder you can write)' },
  EMFILE: { why: 'too many open files', todo: 'raise the open file limit (ulimit -n) or close other programs' },
  ENFILE: { why: 'too many open files in the system', todo: 'close other programs, or raise the system limit' },
  EIO: { why: 'input/output error', todo: 'the disk may be failing; check it (dmesg) and run again with --resume' },
  ENOENT: { why: 'no such file or folder', todo: 'check the path' },
  EEXIST: { why: 'a file is in the way', todo: 'move it away or choose another path' },
  ENOTDIR: { why: 'a part of the path is a file, not a folder', todo: 'check the path' },
  EISDIR: { why: 'it is a folder', todo: 'name a file' },
  ENOTEMPTY: { why: 'the folder is not empty', todo: 'another program may be writing there; check the path' },
  ENAMETOOLONG: { why: 'the name is too long', todo: 'choose a shorter path' },
  ELOOP: { why: 'too many symbolic links', todo: 'check the path for a symbolic link loop' },
  ETXTBSY: { why: 'the file is busy', todo: 'close the program using it' },
  EBUSY: { why: 'the file or device is busy', todo: 'close the program using it' },
  EFBIG: { why: 'the file is too large for the file system', todo: 'give --out a folder on a file system that allows large files' },
};

/** A file system call failed because of the environment (full disk, permissions, …): exit 1, with the path and what to do. */
export class FileSystemError extends UserError {
  constructor(
    message: string,
    /** The errno code (ENOSPC, EACCES, …). */
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * The FileSystemError an errno exception stands for — `cannot write runs/x/metrics.jsonl:
 * no space left on the device (ENOSPC); free some space …` — or null when `e` is not a
 * file system error the environment explains. `path` names the file when the exception
 * does not (write(2) and fsync(2) errors carry no path).
 */
export function fileSystemError(e: unknown, path?: string, options: { readonly replacePath?: boolean } = {}): FileSystemError | null {
  if (e instanceof FileSystemError) {
    // Already explained; named again only to put the path the user knows in place of an inner one.
    if (!options.replacePath || !(e.cause instanceof Error)) return e;
    e = e.cause;
  }
  const err = e as (NodeJS.ErrnoException & { dest?: string }) | null;
  if (!(e instanceof Error) || typeof err?.code !== 'string') return null;
  const problem = FILE_SYSTEM_PROBLEMS[err.code];
  if (!problem) return null;
  const where = options.replacePath && path !== undefined ? path : (err.path ?? path);
  const target = where === undefined ? '' : ` ${where}${err.dest === undefined ? '' : ` → ${err.dest}`}`;
  const verb = err.syscall ?? 'use';
  return new FileSystemError(`cannot ${verb}${target}: ${problem.why} (${err.code}); ${problem.todo}`, err.code, { cause: e });
}

/**
 * Runs `body`; a file system error it throws becomes a FileSystemError naming
 * `path` when the error names none, or always with `replacePath` (a temporary
 * file's name means nothing to the user; the file it becomes does).
 */
export function withPath<T>(path: string, body: () => T, options: { readonly replacePath?: boolean } = {}): T {
  try {
    return body();
  } catch (e) {
    throw fileSystemError(e, path, options) ?? e;
  }
}
