/**
 * The run-time tokenizers: ids numbered as the checker counts them, round trips,
 * specials, and the errors for text outside the vocabulary.
 */
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/index.js';
import { bytes, chars, EncodeError, hf } from '../../src/runtime/tokenizer.js';
import { UserError } from '../../src/runtime/errors.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

describe('chars', () => {
  const tok = chars('ab c\n', ['pad', 'bos', 'eos']);

  it('numbers the alphabet by code point, then the specials in the order given', () => {
    expect(tok.vocab).toBe(8);
    expect([...tok.encode('ab c\n')]).toEqual([0, 1, 2, 3, 4]);
    expect(tok.special('pad')).toBe(5);
    expect(tok.special('bos')).toBe(6);
    expect(tok.special('eos')).toBe(7);
    expect(tok.special('sep')).toBeNull();
  });

  it('counts astral characters as one symbol each', () => {
    const emoji = chars('a😀b', ['eos']);
    expect(emoji.vocab).toBe(4);
    expect([...emoji.encode('b😀a')]).toEqual([2, 1, 0]);
    expect(emoji.decode(emoji.encode('a😀b'))).toBe('a😀b');
  });

  it('round-trips, dropping specials or showing them as <name>', () => {
    const ids = [6, ...tok.encode('a cab'), 7, 5];
    expect(tok.decode(ids)).toBe('a cab');
    expect(tok.decode(ids, { showSpecials: true })).toBe('<bos>a cab<eos><pad>');
    expect(tok.decode(BigInt64Array.from(ids.map(BigInt)))).toBe('a cab');
  });

  it('names the character and its position when it cannot encode', () => {
    expect(() => tok.encode('ab\nabx')).toThrow('chars tokenizer cannot encode "x" (U+0078) at index 5');
    try {
      tok.encode('aé');
    } catch (e) {
      expect(e).toBeInstanceOf(EncodeError);
      // Text a tokenizer cannot encode is the user's to fix: ptr reports it with exit 1, not as a bug.
      expect(e).toBeInstanceOf(UserError);
      expect((e as EncodeError).name).toBe('EncodeError');
      expect((e as EncodeError).char).toBe('é');
      expect((e as EncodeError).index).toBe(1);
    }
    expect.assertions(6);
  });

  it('rejects ids outside the vocabulary and duplicate symbols', () => {
    expect(() => tok.decode([0, 8])).toThrow('token id 8 at position 1 is outside the vocabulary (0..7)');
    expect(() => chars('aba')).toThrow('chars: "a" (U+0061) appears twice in the alphabet');
    expect(() => chars('ab', ['eos', 'eos'])).toThrow("chars: special token 'eos' is listed twice");
  });
});

describe('bytes', () => {
  const tok = bytes(['bos', 'eos']);

  it('uses UTF-8 bytes as ids 0..255, then the specials', () => {
    expect(tok.vocab).toBe(258);
    expect([...tok.encode('aé')]).toEqual([0x61, 0xc3, 0xa9]);
    expect(tok.special('bos')).toBe(256);
    expect(tok.special('eos')).toBe(257);
  });

  it('round-trips any text, with specials between byte runs', () => {
    const text = 'naïve — 日本 😀\n';
    expect(tok.decode(tok.encode(text))).toBe(text);
    const ids = [256, ...tok.encode('hé'), 257, ...tok.encode('!')];
    expect(tok.decode(ids)).toBe('hé!');
    expect(tok.decode(ids, { showSpecials: true })).toBe('<bos>hé<eos>!');
  });

  it('decodes invalid UTF-8 (a model can emit it) with replacement characters', () => {
    expect(tok.decode([0x61, 0xff, 0x62])).toBe('a\uFFFDb');
  });
});

describe('vocab sizes agree with the checker', () => {
  // The checker's type of a tokenizer carries its vocab (check/builtins.ts, tokenizerRule).
  it.each([
    ['chars("abc", specials: [pad, bos, eos])', chars('abc', ['pad', 'bos', 'eos'])],
    ['chars("x😀", specials: [eos])', chars('x😀', ['eos'])],
    ['bytes(specials: [bos, eos, pad, sep])', bytes(['bos', 'eos', 'pad', 'sep'])],
    ['bytes()', bytes()],
  ])('%s', (expr, tokenizer) => {
    const result = checkSource(`tokenizer tok = ${expr}\n`, 'tok.pt-recipe');
    expect(result.diagnostics.map((d) => d.message)).toEqual([]);
    expect(result.declarations[0]!.type).toBe(`tokenizer ${tokenizer.kind} (vocab ${tokenizer.vocab})`);
  });
});

describe('hf tokenizer (tokenizer.json via @huggingface/tokenizers)', () => {
  const json = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'train', 'words-tokenizer.json'), 'utf8'));

  it('numbers ids as the file does, then the specials, as the checker counts them', () => {
    const tok = hf(json, ['pad', 'eos']);
    expect(tok.vocab).toBe(16);
    expect(Array.from(tok.encode('the cat sat on a mat.'))).toEqual([2, 3, 4, 5, 6, 7, 1]);
    expect(Array.from(tok.encode('the zebra'))).toEqual([2, 0]);
    expect(tok.special('pad')).toBe(14);
    expect(tok.special('eos')).toBe(15);
    expect(tok.decode([2, 8, 9, 15, 10, 6, 7])).toBe('the dog ran to a mat');
    expect(tok.decode([2, 8, 15], { showSpecials: true })).toBe('the dog<eos>');
    const checked = checkSource(`tokenizer t = hf("${join(__dirname, '..', 'fixtures', 'train', 'words-tokenizer.json')}", specials: [pad, eos])\n`, 'x.pt-recipe');
    expect(checked.declarations[0]!.type).toMatch(/vocab 16/);
  });

  it('refuses a file without a vocabulary, naming it', () => {
    expect(() => hf({ model: {} }, [], 'bad.json')).toThrow(/^bad\.json: has no "model\.vocab"; expected a Hugging Face tokenizer\.json$/);
  });
});
