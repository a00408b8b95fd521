/**
 * `ptr fmt` rewrites in place through the shared atomic writer: the file keeps
 * its permission bits, a symlink stays a link to the rewritten target, and no
 * temporary file is left beside it.
 */
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runFmt } from '../../src/cli/fmt.js';
import type { Io } from '../../src/cli/io.js';

const UNFORMATTED = 'block Tiny(d: dim) {\n  param w: f32[d, d] = normal(0.02)\n  forward(x: f32[B, d]) -> f32[B, d] = x @ w\n}\n\nmodel tiny=Tiny(4)\n';
const FORMATTED = UNFORMATTED.replace('tiny=Tiny', 'tiny = Tiny');

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-fmt-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fmt(path: string): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const io: Io = { out: (t) => (out += t), err: (t) => (err += t), color: false };
  return { code: runFmt(io, [path], {}), out, err };
}

describe('ptr fmt in-place rewrite', () => {
  it('keeps the permission bits exactly, whatever the umask', () => {
    const path = join(dir, 'private.pt-recipe');
    writeFileSync(path, UNFORMATTED);
    chmodSync(path, 0o600);
    expect(fmt(path)).toMatchObject({ code: 0, err: '' });
    expect(readFileSync(path, 'utf8')).toBe(FORMATTED);
    expect(statSync(path).mode & 0o7777).toBe(0o600);

    chmodSync(path, 0o664);
    writeFileSync(path, UNFORMATTED);
    expect(fmt(path).code).toBe(0);
    expect(statSync(path).mode & 0o7777).toBe(0o664);
    expect(readdirSync(dir)).toEqual(['private.pt-recipe']);
  });

  it('rewrites the target of a symlink and leaves the link a link', () => {
    const target = join(dir, 'real.pt-recipe');
    const link = join(dir, 'link.pt-recipe');
    writeFileSync(target, UNFORMATTED);
    symlinkSync(target, link);
    expect(fmt(link).code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe(FORMATTED);
    expect(readdirSync(dir).sort()).toEqual(['link.pt-recipe', 'real.pt-recipe']);
  });
});
