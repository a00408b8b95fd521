/**
 * Train, then sample, as a user does: a tiny model fine-tuned on prompt/completion
 * rows (every completion "yes") and on chat rows (every reply "ok") answers a
 * training prompt with that completion and stops at eos, because `ptr sample`
 * builds its prompt as training did (bos, the chat template) and lets the model
 * emit eos. Spawns the compiled CLI (dist/).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const BIN = resolve('bin/ptr.js');
let dir = '';

function ptr(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const RECIPE = `import std.nn     { Transformer }
import std.losses { sft }

tokenizer tok = chars("abcdefghijklmnopqrstuvwxyzAUS: \\n", specials: [pad, bos, eos])
model lm = Transformer(vocab: tok.vocab, ctx: 32, dim: 16, layers: 1, heads: 2)
dataset qa = jsonl("qa.jsonl", format: prompt_completion, tokenizer: tok, max_len: 32)
dataset chats = jsonl("chat.jsonl", format: chat, tokenizer: tok, max_len: 32)

stage answer: train lm on qa {
  loss      = sft(lm, batch)
  optimizer = adamw(lr: 1e-2)
  batch     = 4
  steps     = 30
}

stage chat: train lm on chats {
  loss      = sft(lm, batch)
  optimizer = adamw(lr: 1e-2)
  batch     = 4
  steps     = 30
}
`;

const PROMPTS = ['the cat ', 'a dog ', 'the sun ', 'a bird ', 'the moon ', 'a tree '];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-prompt-sample-'));
  writeFileSync(join(dir, 'stop.pt-recipe'), RECIPE);
  writeFileSync(join(dir, 'qa.jsonl'), PROMPTS.map((prompt) => JSON.stringify({ prompt, completion: 'yes' })).join('\n') + '\n');
  const chats = PROMPTS.map((p) => ({ messages: [{ role: 'user', content: p.trim() }, { role: 'assistant', content: 'ok' }] }));
  writeFileSync(join(dir, 'chat.jsonl'), chats.map((c) => JSON.stringify(c)).join('\n') + '\n');
  const run = ptr('run', 'stop.pt-recipe', '--out', 'r');
  expect(run.code, run.stderr).toBe(0);
}, 120_000);

describe('ptr sample after fine-tuning', () => {
  it('answers a prompt/completion prompt with the trained completion and stops at eos', () => {
    const s = ptr('sample', 'stop.pt-recipe', '--run', 'r', '--stage', 'answer', '--prompt', 'the cat ', '--temperature', '0.01', '--tokens', '50');
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toBe('the cat yes\n');
    expect(s.stderr).toBe('stopped: the model ended its reply (<eos>) after 3 tokens\n');
  });

  it('renders a chat prompt with the template and stops the reply at eos', () => {
    const s = ptr('sample', 'stop.pt-recipe', '--run', 'r', '--stage', 'chat', '--prompt', 'cat', '--temperature', '0.01', '--tokens', '50');
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toBe('User: cat\nAssistant: ok\n');
    expect(s.stderr).toBe('stopped: the model ended its reply (<eos>) after 2 tokens\n');
  });

  it('stops at a --stop string, leaving it out', () => {
    const s = ptr('sample', 'stop.pt-recipe', '--run', 'r', '--stage', 'answer', '--prompt', 'the cat ', '--temperature', '0.01', '--stop', 'q', '--stop', 'e');
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toBe('the cat y\n');
    expect(s.stderr).toBe('stopped: stop string "e" after 2 tokens\n');
  });
});
