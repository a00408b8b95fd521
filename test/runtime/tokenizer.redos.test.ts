/**
 * A tokenizer.json whose regex backtracks catastrophically (`(a+)+$` on a run of
 * a's) is an error within a bound, not a hang: one encode under a short bound,
 * and `ptr run` loading a corpus with it under the default bound (5 s plus 1 s
 * per 100,000 characters).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hf, tokenizeBoundMs, tokenizerRegexes, TokenizerTimeoutError, withTimeBound } from '../../src/runtime/tokenizer.js';

const WORDS = JSON.parse(readFileSync(resolve('test/fixtures/train/words-tokenizer.json'), 'utf8')) as Record<string, unknown>;
const EVIL = { ...WORDS, pre_tokenizer: { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false } };
const ATTACK = `${'a'.repeat(40)}!`;

describe('tokenizer time bounds', () => {
  it('stops a catastrophically backtracking regex after its bound, naming the file and the regex', () => {
    const tok = hf(EVIL, [], 'evil.json', new Map(), { timeBoundMs: 300 });
    expect(Array.from(tok.encode('the cat'))).toHaveLength(1); // ordinary text is fine
    const began = performance.now();
    expect(() => tok.encode(ATTACK)).toThrow(TokenizerTimeoutError);
    expect(() => tok.encode(ATTACK)).toThrow('evil.json: tokenizing 41 characters took longer than 0.3 s; its regex "(a+)+$" may backtrack catastrophically on this text');
    expect(performance.now() - began).toBeLessThan(5000);
  });

  it('gives nested bounds one outer bound, and is linear in the text for real tokenizers', () => {
    expect(tokenizeBoundMs(0)).toBe(5000);
    expect(tokenizeBoundMs(1_000_000)).toBe(15_000);
    expect(tokenizerRegexes(EVIL)).toEqual(['(a+)+$']);
    // The inner (generous) bound is ignored inside the outer one, which fires.
    expect(() => withTimeBound(200, () => 'outer', () => hf(EVIL, [], 'evil.json').encode(ATTACK))).toThrow('outer');
    expect(withTimeBound(1000, () => 'x', () => 42)).toBe(42);
  });

  it('ptr run with such a tokenizer fails with exit 1 within the bound', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-redos-'));
    cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
    writeFileSync(join(dir, 'words-tokenizer.json'), JSON.stringify(EVIL));
    writeFileSync(join(dir, 'corpus.txt'), `${readFileSync(join(dir, 'corpus.txt'), 'utf8')}\n${ATTACK}\n`);
    const began = performance.now();
    const r = spawnSync(process.execPath, [resolve('bin/ptr.js'), 'run', 'words.pt-recipe', '--steps', '1'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: dataset words: .*words-tokenizer\.json: tokenizing .*corpus\.txt \([\d,]+ bytes\) took longer than 5\.\d s; a regex in the tokenizer file may backtrack catastrophically\n$/m);
    expect(performance.now() - began).toBeLessThan(60_000);
  });
});
