/**
 * `ptr generate` as a user runs it (the compiled CLI, dist/): a tiny model
 * (test/fixtures/generation/sft.pt-recipe) fine-tuned on prompt/completion rows (every completion "yes") and on chat rows
 * (every reply "ok") answers the training prompts from a JSONL file and stops at
 * eos — prompts built as training built them (bos, the chat template); results
 * in prompt order whatever the batch size, with or without the KV cache; bad
 * prompt files named by file and line.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const BIN = resolve('bin/ptr.js');
const FIXTURES = resolve('test/fixtures/generation');
let dir = '';

function ptr(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}


/** The prompts of qa.jsonl and (trimmed) the user messages of chat.jsonl. */
const PROMPTS = ['the cat ', 'a dog ', 'the sun ', 'a bird ', 'the moon ', 'a tree '];
const jsonl = (rows: readonly unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const parse = (text: string): Record<string, unknown>[] => text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-generate-'));
  for (const file of ['sft.pt-recipe', 'qa.jsonl', 'chat.jsonl']) copyFileSync(join(FIXTURES, file), join(dir, file));
  writeFileSync(join(dir, 'questions.jsonl'), jsonl(PROMPTS.map((prompt) => ({ prompt, id: prompt.length }))));
  writeFileSync(join(dir, 'chats.jsonl'), jsonl([{ prompt: 'cat' }, { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'dog' }] }]));
  const run = ptr('run', 'sft.pt-recipe', '--out', 'r');
  expect(run.code, run.stderr).toBe(0);
}, 120_000);

describe('ptr generate', () => {
  it('answers every training prompt of a JSONL file with the trained completion, stops at eos, and keeps the rows as given', () => {
    const g = ptr('generate', 'sft.pt-recipe', '--run', 'r', '--stage', 'answer', '--prompts', 'questions.jsonl', '--temperature', '0', '--out', 'answers.jsonl');
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toBe('');
    expect(g.stderr).toMatch(/^generated 6 replies, 18 tokens in [\d.]+ s \(\d+ tokens\/s\): answers\.jsonl\n$/);
    expect(parse(readFileSync(join(dir, 'answers.jsonl'), 'utf8'))).toEqual(PROMPTS.map((prompt) => ({ prompt, id: prompt.length, completion: 'yes', finish: 'eos', stop: '<eos>', tokens: 3 })));
  });

  it('gives the same results in prompt order whatever the batch, with the cache or without', () => {
    const sampled = ['--temperature', '1', '--top-k', '5', '--seed', '3', '--max-tokens', '12'];
    const outputs = [['--batch', '16'], ['--batch', '4'], ['--batch', '1'], ['--batch', '4', '--no-cache']].map((extra) => {
      const g = ptr('generate', 'sft.pt-recipe', '--run', 'r', '--stage', 'answer', '--prompts', 'questions.jsonl', ...sampled, ...extra);
      expect(g.code, g.stderr).toBe(0);
      return g.stdout;
    });
    expect(parse(outputs[0]!).map((r) => r['prompt'])).toEqual(PROMPTS);
    for (const o of outputs.slice(1)) expect(o).toBe(outputs[0]);
  });

  it('renders chat prompts with the template: a "prompt" is the user message, "messages" are taken as given', () => {
    const g = ptr('generate', 'sft.pt-recipe', '--run', 'r', '--stage', 'chat', '--prompts', 'chats.jsonl', '--temperature', '0');
    expect(g.code, g.stderr).toBe(0);
    expect(parse(g.stdout).map((r) => [r['completion'], r['finish']])).toEqual([
      ['ok', 'eos'],
      ['ok', 'eos'],
    ]);
  });

  it('prints one prompt and its reply as ptr sample does', () => {
    const g = ptr('generate', 'sft.pt-recipe', '--run', 'r', '--stage', 'answer', '--prompt', 'the cat ', '--temperature', '0');
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toBe('the cat yes\n');
    expect(g.stderr).toBe('stopped: the model ended its reply (<eos>) after 3 tokens\n');
    const s = ptr('sample', 'sft.pt-recipe', '--run', 'r', '--stage', 'answer', '--prompt', 'the cat ', '--temperature', '0.01');
    expect(s.stdout).toBe(g.stdout);
  });

  it('names the file and line of a bad prompt row (exit 1), and refuses --prompt with --prompts (exit 2)', () => {
    writeFileSync(join(dir, 'bad.jsonl'), '{"prompt": "the cat "}\n\n{"prompt": 3}\n');
    const bad = ptr('generate', 'sft.pt-recipe', '--run', 'r', '--stage', 'answer', '--prompts', 'bad.jsonl');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/bad\.jsonl:3: "prompt" must be a string, not 3/);
    writeFileSync(join(dir, 'unencodable.jsonl'), '{"prompt": "the CAT"}\n');
    const enc = ptr('generate', 'sft.pt-recipe', '--run', 'r', '--stage', 'answer', '--prompts', 'unencodable.jsonl');
    expect(enc.code).toBe(1);
    expect(enc.stderr).toMatch(/unencodable\.jsonl:1: "prompt": the stage's chars tokenizer cannot encode "C"/);
    const both = ptr('generate', 'sft.pt-recipe', '--run', 'r', '--prompt', 'a', '--prompts', 'questions.jsonl');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--prompt gives one prompt and --prompts a file of them/);
    const missing = ptr('generate', 'sft.pt-recipe', '--run', 'r', '--prompts', 'nowhere.jsonl');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/--prompts: cannot read nowhere\.jsonl: no such file/);
  });
});
