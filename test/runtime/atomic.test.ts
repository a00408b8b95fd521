/**
 * The atomic writer: the target is replaced whole or not at all, and no
 * temporary files are left behind either way.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeJsonAtomic } from '../../src/runtime/atomic.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-atomic-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('creates a file and replaces it, from bytes or text', () => {
    const path = join(dir, 'out.bin');
    writeFileAtomic(path, Uint8Array.of(1, 2, 3));
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    writeFileAtomic(path, 'héllo');
    expect(readFileSync(path, 'utf8')).toBe('héllo');
    expect(readdirSync(dir)).toEqual(['out.bin']);
  });

  it('writes a subarray view exactly (its offset and length, not the whole buffer)', () => {
    const path = join(dir, 'view.bin');
    writeFileAtomic(path, Uint8Array.of(9, 8, 7, 6, 5).subarray(1, 3));
    expect([...readFileSync(path)]).toEqual([8, 7]);
  });

  it('leaves the old file intact and no temp file behind when the write fails', () => {
    const path = join(dir, 'checkpoint.safetensors');
    writeFileSync(path, 'old contents');
    // Not bytes: the write into the temp file throws after the temp file exists.
    const bad = { byteLength: 4 } as unknown as Uint8Array;
    expect(() => writeFileAtomic(path, bad)).toThrow();
    expect(readFileSync(path, 'utf8')).toBe('old contents');
    expect(readdirSync(dir)).toEqual(['checkpoint.safetensors']);
  });

  it('gives the new file exactly the mode asked for, umask or not', () => {
    const path = join(dir, 'secret.txt');
    writeFileAtomic(path, 'x', { mode: 0o600 });
    expect(statSync(path).mode & 0o7777).toBe(0o600);
    writeFileAtomic(path, 'y', { mode: 0o666 });
    expect(statSync(path).mode & 0o7777).toBe(0o666);
    expect(readFileSync(path, 'utf8')).toBe('y');
  });

  it('fails without touching anything when the directory does not exist', () => {
    expect(() => writeFileAtomic(join(dir, 'missing', 'x.json'), 'x')).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('writeJsonAtomic', () => {
  it('writes 2-space JSON with a trailing newline', () => {
    const path = join(dir, 'manifest.json');
    writeJsonAtomic(path, { b: 1, a: [1, 2], c: { d: 'x' } });
    expect(readFileSync(path, 'utf8')).toBe('{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ],\n  "c": {\n    "d": "x"\n  }\n}\n');
  });
});
