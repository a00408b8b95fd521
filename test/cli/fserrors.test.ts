/**
 * A full disk, a read-only folder, a folder without permission and a damaged
 * metrics line are the environment's problems, not bugs: `ptr run` exits 1
 * naming the path and what to do, never 70, and a failed checkpoint leaves no
 * partial folder behind. The disk-full and read-only cases mount a small tmpfs
 * in a private mount namespace (`unshare`), and are skipped where that is not
 * permitted; permission denied removes write permission from the run folder (as root,
 * `ptr` runs without the capabilities that override it).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fileSystemError, FileSystemError } from '../../src/runtime/errors.js';

const BIN = resolve('bin/ptr.js');
let dir = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-fserrors-'));
  cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
});

/** Whether this machine lets us mount a tmpfs in a new user + mount namespace. */
const canMount = spawnSync('unshare', ['-rm', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; r=$?; rmdir "$d"; exit $r'], { encoding: 'utf8' }).status === 0;

/** Runs `ptr ARGS` in `dir` with a tmpfs of `options` mounted at `mountpoint` (only this process sees it). */
function ptrOnTmpfs(mountpoint: string, options: string, args: string[]): { code: number | null; stderr: string; listing: string } {
  mkdirSync(join(dir, mountpoint), { recursive: true });
  const script = `mount -t tmpfs -o ${options} tmpfs "$1" && shift && "$@"; code=$?; find "${mountpoint}" -print | sort >&3; exit $code`;
  const r = spawnSync('unshare', ['-rm', 'sh', '-c', `exec 3>listing.txt; ${script}`, 'sh', mountpoint, process.execPath, BIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  const listing = existsSync(join(dir, 'listing.txt')) ? readFileSync(join(dir, 'listing.txt'), 'utf8') : '';
  return { code: r.status, stderr: r.stderr, listing };
}

describe('file system errors from the environment: exit 1 with the path and what to do', () => {
  it.skipIf(!canMount)('ENOSPC: a disk that fills up at the first checkpoint', () => {
    // 400 KB hold the compiled models (about 350 KB with the generation graphs) but not the first checkpoint (about 100 KB).
    const r = ptrOnTmpfs('small', 'size=400k', ['run', 'tiny.pt-recipe', '--out', 'small/run']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot write small\/run\/checkpoints\/pretrain\/step-000004: no space left on the device \(ENOSPC\); free some space \(old run folders, checkpoints\) or give --out on another disk, then run again with --resume\n$/m);
    expect(r.stderr).not.toMatch(/internal error/);
    // No half-written checkpoint folder or temp file is left.
    expect(r.listing).not.toMatch(/\.tmp/);
  });

  it.skipIf(!canMount)('EROFS: a read-only run folder', () => {
    const r = ptrOnTmpfs('readonly', 'ro,size=64k', ['run', 'tiny.pt-recipe', '--out', 'readonly/run']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot mkdir readonly\/run: read-only file system \(EROFS\); give --out a folder on a writable disk\n$/m);
  });

  it('EACCES: a run folder the user may not write', () => {
    const locked = join(dir, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    // Root ignores permissions: it runs ptr without the capabilities that let it (setpriv drops
    // them from the bounding set), still as root, so the checkout need not be readable by others.
    const asRoot = process.getuid?.() === 0;
    const command = asRoot ? ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', process.execPath] : [process.execPath];
    const r = spawnSync(command[0]!, [...command.slice(1), BIN, 'run', 'tiny.pt-recipe', '--out', 'locked/run'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot mkdir locked\/run: permission denied \(EACCES\); check the permissions of the path \(or give --out a folder you can write\)\n$/m);
  });

  it('a damaged line in metrics.jsonl is named with its line number', () => {
    const first = spawnSync(process.execPath, [BIN, 'run', 'tiny.pt-recipe', '--out', 'metrics', '--steps', '4'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(first.status, first.stderr).toBe(0);
    writeFileSync(join(dir, 'metrics', 'metrics.jsonl'), '{"step":1,"stage":"pretrain","loss":3}\n{"step": oops}\n{"step":3,"stage":"pretrain","loss":2}\n');
    const r = spawnSync(process.execPath, [BIN, 'run', 'tiny.pt-recipe', '--out', 'metrics', '--steps', '4', '--resume'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: metrics\/metrics\.jsonl:2: not a metrics record: .* \(delete the line, or move the file away\)\n$/m);
  });

  it('EMFILE and friends are classified with advice; codes of our own bugs are not', () => {
    const errno = (code: string, syscall: string, path?: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: ${syscall}`), { code, syscall, ...(path ? { path } : {}) });
    expect(fileSystemError(errno('EMFILE', 'open', 'data/corpus.txt'))?.message).toBe('cannot open data/corpus.txt: too many open files (EMFILE); raise the open file limit (ulimit -n) or close other programs');
    // write(2) errors carry no path: the caller's is used.
    expect(fileSystemError(errno('ENOSPC', 'write'), 'runs/x/metrics.jsonl')?.message).toMatch(/^cannot write runs\/x\/metrics\.jsonl: no space left on the device \(ENOSPC\)/);
    expect(fileSystemError(errno('EDQUOT', 'write'), 'f')).toBeInstanceOf(FileSystemError);
    expect(fileSystemError(errno('EINVAL', 'read'), 'f')).toBeNull();
    expect(fileSystemError(new Error('not a system error'))).toBeNull();
    // A temp file's name is replaced by the file it was to become.
    const inner = fileSystemError(errno('ENOSPC', 'write', 'runs/x/.model.safetensors.1.ab.tmp'))!;
    expect(fileSystemError(inner, 'runs/x/model.safetensors', { replacePath: true })?.message).toMatch(/^cannot write runs\/x\/model\.safetensors: /);
    expect(readdirSync(dir)).toContain('tiny.pt-recipe');
  });
});
