/**
 * One prompt builder for training and sampling: the ids `ptr sample` feeds a model
 * (promptIds) are exactly the start of the sequences the data loader trained it on,
 * for prompt/completion, preference and chat rows, with and without bos/eos; and
 * generation stops at eos, at a stop string, or after its token budget, saying which.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CHAT_TEMPLATE, type ChatMessage, type ChatTemplate } from '../../src/check/chatTemplate.js';
import { JsonlDataset } from '../../src/runtime/data.js';
import { generate, generatableIds, sampleToken } from '../../src/runtime/generate.js';
import { Prng } from '../../src/runtime/prng.js';
import { promptIds, PromptEncodeError, replyStops, type PromptInput } from '../../src/runtime/prompt.js';
import { bytes, chars, type Tokenizer } from '../../src/runtime/tokenizer.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzACSU:!? \n';
const withSpecials = chars(ALPHABET, ['pad', 'bos', 'eos']);
const plain = chars(ALPHABET, ['pad']);

const numbers = (a: ArrayLike<number | bigint>): number[] => Array.from(a, Number);

/** Row `row` of a field of a training batch (batch size 1 reads row `row` of the file with one-row files). */
function trainingRow(tok: Tokenizer, jsonl: string, format: 'prompt_completion' | 'preference' | 'chat', template?: ChatTemplate): { tokens: number[]; mask: number[] }[] {
  const ds = JsonlDataset.fromText(jsonl, format, tok, { seed: 0, ...(template ? { chatTemplate: template } : {}) });
  const b = ds.trainBatch(0, 1);
  const pairs = format === 'preference' ? [['chosen', 'chosen_mask'], ['rejected', 'rejected_mask']] : [['tokens', 'loss_mask']];
  return pairs.map(([t, m]) => ({ tokens: numbers(b.get(t!)!.data as BigInt64Array), mask: numbers(b.get(m!)!.data as Float32Array) }));
}

/**
 * The prompt is a prefix of the sequence and the token right after it is trained (the
 * reply starts there); on a first turn, nothing in the prompt is trained.
 */
function expectPrefixOf(prompt: Int32Array, seq: { tokens: number[]; mask: number[] }, firstTurn = true): void {
  const ids = numbers(prompt);
  expect(seq.tokens.slice(0, ids.length)).toEqual(ids);
  if (firstTurn) expect(seq.mask.slice(0, ids.length)).toEqual(ids.map(() => 0));
  expect(seq.mask[ids.length]).toBe(1);
  expect(seq.mask[ids.length - 1]).toBe(0);
}

describe('promptIds: sampling starts exactly where training sequences start', () => {
  for (const [name, tok] of [
    ['bos and eos', withSpecials],
    ['no specials', plain],
    ['bytes', bytes(['pad', 'bos', 'eos'])],
  ] as const) {
    it(`prompt_completion and preference (${name})`, () => {
      const prompt = 'what is a cat? ';
      const [seq] = trainingRow(tok, JSON.stringify({ prompt, completion: 'a pet' }), 'prompt_completion');
      expectPrefixOf(promptIds(tok, { format: 'prompt_completion', prompt }), seq!);
      const pair = trainingRow(tok, JSON.stringify({ prompt, chosen: 'a pet', rejected: 'a car' }), 'preference');
      for (const s of pair) expectPrefixOf(promptIds(tok, { format: 'preference', prompt }), s);
    });

    it(`chat, at every assistant turn of a conversation (${name})`, () => {
      const messages: ChatMessage[] = [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'hello!' },
        { role: 'user', content: 'a cat?' },
        { role: 'assistant', content: 'a pet' },
      ];
      const [seq] = trainingRow(tok, JSON.stringify({ messages }), 'chat');
      for (const turn of [2, 4]) expectPrefixOf(promptIds(tok, { format: 'chat', messages: messages.slice(0, turn), template: DEFAULT_CHAT_TEMPLATE }), seq!, turn === 2);
    });
  }

  it('starts with bos only where training does: JSONL formats, not text corpora', () => {
    const bos = withSpecials.special('bos')!;
    expect(numbers(promptIds(withSpecials, { format: 'prompt_completion', prompt: 'ab' }))).toEqual([bos, ...numbers(withSpecials.encode('ab'))]);
    expect(numbers(promptIds(withSpecials, { format: 'text', text: 'ab' }))).toEqual(numbers(withSpecials.encode('ab')));
  });

  it('renders a chat prompt with the template and ends it with the assistant prefix', () => {
    const template: ChatTemplate = { system: 'S: ', user: 'U: ', assistant: 'A: ', end: '\n' };
    const input: PromptInput = { format: 'chat', messages: [{ role: 'system', content: 'be nice' }, { role: 'user', content: 'hi' }], template };
    expect(withSpecials.decode(promptIds(withSpecials, input), { showSpecials: true })).toBe('<bos>S: be nice\nU: hi\nA: ');
    // A chat prompt with no messages is just the assistant prefix: the model speaks first.
    expect(withSpecials.decode(promptIds(withSpecials, { format: 'chat', messages: [], template }), { showSpecials: true })).toBe('<bos>A: ');
  });

  it('names the field it cannot encode', () => {
    const tok = chars('ab');
    expect(() => promptIds(tok, { format: 'prompt_completion', prompt: 'abc' })).toThrow(PromptEncodeError);
    expect(() => promptIds(tok, { format: 'prompt_completion', prompt: 'abc' })).toThrow('"prompt": chars tokenizer cannot encode "c" (U+0063) at index 2');
    expect(() => promptIds(tok, { format: 'chat', messages: [], template: DEFAULT_CHAT_TEMPLATE })).toThrow('"template.assistant": chars tokenizer cannot encode "A" (U+0041) at index 0');
  });

  it('stops a reply where training closed it: eos, or the template end when there is no eos', () => {
    const chat: PromptInput = { format: 'chat', messages: [], template: DEFAULT_CHAT_TEMPLATE };
    expect(replyStops(withSpecials, chat)).toEqual({ ids: [withSpecials.special('eos')], strings: [] });
    expect(replyStops(plain, chat)).toEqual({ ids: [], strings: ['\n'] });
    expect(replyStops(plain, { format: 'text', text: 'a' })).toEqual({ ids: [], strings: [] });
  });
});

describe('generate', () => {
  const eos = withSpecials.special('eos')!;
  /** A scripted model: emits the ids of `text`, then `after` forever. */
  const scripted = (prompt: number, text: string, after: number) => {
    const script = numbers(withSpecials.encode(text));
    return (ids: readonly number[]): number => script[ids.length - prompt] ?? after;
  };
  const decode = (ids: readonly number[]): string => withSpecials.decode(ids);

  it('stops at eos, leaving it out, and says so', async () => {
    const g = await generate([1, 2], scripted(2, 'a pet', eos), { maxTokens: 50, stopIds: [eos], decode });
    expect(g.text).toBe('a pet');
    expect(g.ids).toEqual(numbers(withSpecials.encode('a pet')));
    expect(g.reason).toEqual({ kind: 'stop-token', id: eos });
  });

  it('stops at the earliest stop string and cuts the text before it', async () => {
    const a = withSpecials.encode('a')[0]!;
    const g = await generate([1], scripted(1, 'one!\ntwo?', a), { maxTokens: 50, stopStrings: ['?', '\n'], decode });
    expect(g.text).toBe('one!');
    expect(g.reason).toEqual({ kind: 'stop-string', text: '\n' });
    expect(decode(g.ids)).toBe('one!\n');
  });

  it('stops after maxTokens when nothing else stops it', async () => {
    const a = withSpecials.encode('a')[0]!;
    const g = await generate([1], scripted(1, '', a), { maxTokens: 7, stopIds: [eos], stopStrings: ['!'], decode });
    expect(g.text).toBe('aaaaaaa');
    expect(g.reason).toEqual({ kind: 'length', tokens: 7 });
  });

  it('passes the whole context, prompt first, to the next-token function', async () => {
    const seen: number[][] = [];
    await generate([7, 8], (ids) => (seen.push([...ids]), 3), { maxTokens: 2 });
    expect(seen).toEqual([[7, 8], [7, 8, 3]]);
  });

  it('samples every ordinary token and eos, never pad or bos', () => {
    const allowed = generatableIds(withSpecials);
    expect(allowed).toContain(eos);
    expect(allowed).not.toContain(withSpecials.special('pad'));
    expect(allowed).not.toContain(withSpecials.special('bos'));
    expect(allowed.length).toBe(withSpecials.vocab - 2);
    // With eos far above everything else, a sample is eos (and pad, higher still, is never drawn).
    const logits = new Float32Array(withSpecials.vocab);
    logits[eos] = 50;
    logits[withSpecials.special('pad')!] = 100;
    const prng = new Prng(3);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits, 1, prng, allowed)).toBe(eos);
  });
});
