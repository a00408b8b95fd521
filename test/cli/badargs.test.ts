/**
 * Every `ptr` command with bad arguments and bad input: each case states the exit
 * code (1: bad input or environment, 2: wrong command line — never 70, which is
 * for bugs in pt-recipe) and what the message must name. Most cases run `main`
 * in process (the function bin/ptr.js runs); a few spawn the real CLI to show the
 * process exits with the same code.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/io.js';

let dir = '';
const at = (name: string): string => join(dir, name);

async function ptr(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: Io = { out: (t) => void (stdout += t), err: (t) => void (stderr += t), color: false };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

/** A shape error on line 3: the checker reports it, and no command gets further. */
const BROKEN = `block Proj(d: dim) {
  param w: f32[64, 256] = normal(0.02)
  forward(x: f32[B, T, 128]) -> f32[B, T, 256] = x @ w
}
`;

/** A character model whose alphabet has no newline (the default prompt of ptr sample). */
const NO_NEWLINE = `import std.nn     { Transformer }
import std.losses { next_token }

tokenizer tok = chars("ab ", specials: [pad])
model lm = Transformer(vocab: tok.vocab, ctx: 8, dim: 8, layers: 1, heads: 2)
dataset words = text("ab.txt", tokenizer: tok, block: 8)

stage pretrain: train lm on words {
  loss  = next_token(lm(batch.tokens), batch.tokens)
  optimizer = adamw(lr: 1e-3)
  steps = 2
}
`;

/** Prompt/completion data, a tokenizer without bos, and a completion too long for max_len. */
const JSONL = `import std.nn     { Transformer }
import std.losses { sft }

tokenizer tok = chars("ab ", specials: [pad, eos])
model lm = Transformer(vocab: tok.vocab, ctx: 8, dim: 8, layers: 1, heads: 2)
dataset qa = jsonl("qa.jsonl", format: prompt_completion, tokenizer: tok, max_len: 8)

stage sft: train lm on qa {
  loss  = sft(lm, batch)
  optimizer = adamw(lr: 1e-3)
  batch = 2
  steps = 2
}
`;

type Case = readonly [what: string, args: readonly string[], code: 1 | 2, message: RegExp];

/** Cases that need no trained model; FILE-relative paths are made absolute in the temporary folder. */
const CASES: readonly Case[] = [
  ['no command', [], 2, /Usage: ptr/],
  ['an unknown command', ['frobnicate'], 2, /unknown command 'frobnicate'/],
  ['an unknown option', ['check', '--bogus', '@tiny.pt-recipe'], 2, /unknown option '--bogus'/],

  ['check: no file', ['check'], 2, /missing required argument 'files'/],
  ['check: a missing file', ['check', '@missing.pt-recipe'], 1, /error\[file-not-found\]: cannot read .*missing\.pt-recipe/],
  ['check: a folder without recipes', ['check', '@empty'], 2, /no \.pt-recipe files under .*empty/],
  ['check: a file that is not a recipe', ['check', '@corpus.txt'], 1, /corpus\.txt:1:1: error\[syntax-error\]/],
  ['check: a recipe with errors', ['check', '@broken.pt-recipe'], 1, /broken\.pt-recipe:3:52: error\[matmul-shape\]/],
  ['check: --max-errors 0', ['check', '--max-errors', '0', '@tiny.pt-recipe'], 2, /'--max-errors <n>' argument '0' is invalid\. expected a positive integer/],
  ['check: --max-errors abc', ['check', '--max-errors', 'abc', '@tiny.pt-recipe'], 2, /'--max-errors <n>' argument 'abc' is invalid/],

  ['types: a missing file', ['types', '@missing.pt-recipe'], 1, /error\[file-not-found\]: cannot read .*missing\.pt-recipe/],
  ['types: a recipe with errors', ['types', '@broken.pt-recipe'], 1, /error\[matmul-shape\]/],

  ['fmt: no file', ['fmt'], 2, /missing required argument 'files'/],
  ['fmt: a missing file', ['fmt', '@missing.pt-recipe'], 1, /cannot read .*missing\.pt-recipe: no such file/],
  ['fmt: a folder without recipes', ['fmt', '--check', '@empty'], 2, /no \.pt-recipe files under/],
  ['fmt: a file with syntax errors', ['fmt', '--check', '@corpus.txt'], 1, /error\[syntax-error\]/],

  ['ast: no file', ['ast'], 2, /missing required argument 'file'/],
  ['ast: two files', ['ast', '@tiny.pt-recipe', '@broken.pt-recipe'], 2, /too many arguments for 'ast'/],
  ['ast: a folder', ['ast', '@empty'], 1, /cannot read .*empty: not a regular file/],

  ['compile: no -o', ['compile', '@tiny.pt-recipe'], 2, /required option '-o, --out <dir>' not specified/],
  ['compile: a missing file', ['compile', '@missing.pt-recipe', '-o', '@out'], 1, /cannot read .*missing\.pt-recipe/],
  ['compile: a folder', ['compile', '@empty', '-o', '@out'], 1, /cannot read .*empty/],
  ['compile: a recipe with errors', ['compile', '@broken.pt-recipe', '-o', '@out'], 1, /error\[matmul-shape\]/],
  ['compile: an unknown stage', ['compile', '@tiny.pt-recipe', '-o', '@out', '--stage', 'nosuch'], 2, /--stage nosuch: .*tiny\.pt-recipe has no stage 'nosuch' \(its stages: pretrain\)/],
  ['compile: -o is a file', ['compile', '@tiny.pt-recipe', '-o', '@corpus.txt'], 1, /cannot mkdir .*corpus\.txt: a file is in the way \(EEXIST\)/],
  ['compile: --steps -1', ['compile', '@tiny.pt-recipe', '-o', '@out', '--steps', '-1'], 2, /'--steps <n>' argument '-1' is invalid\. expected a positive integer/],
  ['compile: --steps 1.5', ['compile', '@tiny.pt-recipe', '-o', '@out', '--steps', '1.5'], 2, /'--steps <n>' argument '1\.5' is invalid/],

  ['ir: an unknown graph', ['ir', '@tiny.pt-recipe', '--graph', 'nosuch'], 2, /'--graph <which>' argument 'nosuch' is invalid\. Allowed choices are train_step, eval, inference/],
  ['ir: an unknown stage', ['ir', '@tiny.pt-recipe', '--stage', 'nosuch'], 2, /has no stage 'nosuch'/],
  ['ir: a recipe with errors', ['ir', '@broken.pt-recipe'], 1, /error\[matmul-shape\]/],

  ['gradcheck: an unknown stage', ['gradcheck', '@tiny.pt-recipe', '--stage', 'nosuch'], 2, /has no stage 'nosuch'/],
  ['gradcheck: --tolerance abc', ['gradcheck', '@tiny.pt-recipe', '--tolerance', 'abc'], 2, /'--tolerance <x>' argument 'abc' is invalid\. expected a positive number/],
  ['gradcheck: --tolerance -1', ['gradcheck', '@tiny.pt-recipe', '--tolerance', '-1'], 2, /'--tolerance <x>' argument '-1' is invalid/],
  ['gradcheck: --batch 0', ['gradcheck', '@tiny.pt-recipe', '--batch', '0'], 2, /'--batch <n>' argument '0' is invalid/],
  ['gradcheck: --seed -3', ['gradcheck', '@tiny.pt-recipe', '--seed', '-3'], 2, /'--seed <n>' argument '-3' is invalid\. expected an integer >= 0/],

  ['run: a missing file', ['run', '@missing.pt-recipe', '--out', '@runs'], 1, /cannot read .*missing\.pt-recipe/],
  ['run: a file that is not a recipe', ['run', '@corpus.txt', '--out', '@runs'], 1, /error\[syntax-error\]/],
  ['run: a recipe with errors', ['run', '@broken.pt-recipe', '--out', '@runs'], 1, /error\[matmul-shape\]/],
  ['run: an unknown stage', ['run', '@tiny.pt-recipe', '--out', '@runs', '--stage', 'nosuch'], 2, /has no stage 'nosuch' \(its stages: pretrain\)/],
  ['run: --steps -1', ['run', '@tiny.pt-recipe', '--steps', '-1'], 2, /'--steps <n>' argument '-1' is invalid/],
  ['run: --steps abc', ['run', '@tiny.pt-recipe', '--steps', 'abc'], 2, /'--steps <n>' argument 'abc' is invalid/],
  ['run: --threads 0', ['run', '@tiny.pt-recipe', '--threads', '0'], 2, /'--threads <n>' argument '0' is invalid/],
  ['run: --steps-per-run 0', ['run', '@tiny.pt-recipe', '--steps-per-run', '0'], 2, /'--steps-per-run <k>' argument '0' is invalid/],
  ['run: an unknown device', ['run', '@tiny.pt-recipe', '--device', 'tpu'], 2, /'--device <device>' argument 'tpu' is invalid\. Allowed choices are cpu, cuda/],
  ['run: --out is a file', ['run', '@tiny.pt-recipe', '--out', '@corpus.txt', '--steps', '1'], 1, /the run folder .*corpus\.txt is a file, not a folder; give --out a folder/],
  ['run: a completion longer than max_len', ['run', '@jsonl.pt-recipe', '--out', '@runs'], 1, /qa\.jsonl:2: the completion cannot fit in max_len 8/],

  ['sample: a missing file', ['sample', '@missing.pt-recipe'], 1, /cannot read .*missing\.pt-recipe/],
  ['sample: a recipe with errors', ['sample', '@broken.pt-recipe'], 1, /error\[matmul-shape\]/],
  ['sample: an unknown stage', ['sample', '@tiny.pt-recipe', '--stage', 'nosuch'], 2, /has no stage 'nosuch'/],
  ['sample: no run folder', ['sample', '@tiny.pt-recipe', '--run', '@nowhere'], 1, /no checkpoint of stage pretrain in .*nowhere\/checkpoints; run 'ptr run .*tiny\.pt-recipe' first/],
  ['sample: --run is a file', ['sample', '@tiny.pt-recipe', '--run', '@corpus.txt'], 1, /no checkpoint of stage pretrain in .*corpus\.txt/],
  ['sample: a prompt the tokenizer cannot encode', ['sample', '@tiny.pt-recipe', '--prompt', 'the CAT'], 2, /--prompt: the stage's chars tokenizer cannot encode "C" \(U\+0043\) at index 4/],
  ['sample: no prompt, and no newline in the alphabet', ['sample', '@nonl.pt-recipe'], 2, /--prompt is needed: the stage's tokenizer cannot encode a newline \(the default prompt\)/],
  ['sample: no prompt, and no bos', ['sample', '@jsonl.pt-recipe'], 2, /--prompt is needed: the stage's tokenizer has no bos token to start from/],
  ['sample: a stage that trains a reward model', ['sample', '@pipeline.pt-recipe', '--stage', 'reward'], 1, /stage reward trains rm, which outputs \[1\]; ptr sample needs a language model/],
  ['sample: --system on text data', ['sample', '@tiny.pt-recipe', '--system', 'be brief'], 2, /--system is for chat data; this stage trains on text data/],
  ['sample: --tokens 0', ['sample', '@tiny.pt-recipe', '--tokens', '0'], 2, /'--tokens <n>' argument '0' is invalid/],
  ['sample: --temperature 0', ['sample', '@tiny.pt-recipe', '--temperature', '0'], 2, /'--temperature <x>' argument '0' is invalid\. expected a positive number/],
  ['sample: --seed abc', ['sample', '@tiny.pt-recipe', '--seed', 'abc'], 2, /'--seed <n>' argument 'abc' is invalid/],
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-badargs-'));
  cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
  mkdirSync(at('empty'));
  writeFileSync(at('broken.pt-recipe'), BROKEN);
  writeFileSync(at('nonl.pt-recipe'), NO_NEWLINE);
  writeFileSync(at('ab.txt'), 'ab ba ab ba ab ba ab ba ab ba ab ba ab ba ab ba ab ba ');
  writeFileSync(at('jsonl.pt-recipe'), JSONL);
  writeFileSync(at('qa.jsonl'), ['{"prompt":"ab","completion":"ba"}', '{"prompt":"a","completion":"ab ab ab ab"}', ''].join('\n'));
});

describe('ptr with bad arguments or input: exit 1 or 2 with a message naming the problem, never 70', () => {
  for (const [what, args, code, message] of CASES) {
    it(what, async () => {
      const r = await ptr(...args.map((a) => (a.startsWith('@') ? at(a.slice(1)) : a)));
      const output = r.stderr + r.stdout; // check and types print their diagnostics to stdout
      expect(r.code, output).toBe(code);
      expect(output).toMatch(message);
      expect(output).not.toMatch(/internal error:|a bug in pt-recipe/);
    });
  }

  it('run --resume with nothing to resume: starts at step 1 and says so (exit 0, not an error)', async () => {
    const r = await ptr('run', at('tiny.pt-recipe'), '--out', at('fresh'), '--steps', '1', '--resume');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/note: stage pretrain had no checkpoint in .*fresh to resume from; it started at step 1/);
  });

  it('a damaged checkpoint is an error naming the file (exit 1)', async () => {
    const trained = await ptr('run', at('tiny.pt-recipe'), '--out', at('damaged'), '--steps', '1');
    expect(trained.code, trained.stderr).toBe(0);
    writeFileSync(at('damaged/checkpoints/pretrain/step-000001/model.safetensors'), 'not a safetensors file');
    const r = await ptr('sample', at('tiny.pt-recipe'), '--run', at('damaged'), '--tokens', '2');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/damaged\/checkpoints\/pretrain\/step-000001\/model\.safetensors/);
  });

  it('the real process exits with the same codes', () => {
    const spawn = (...args: string[]): { code: number | null; stderr: string } => {
      const r = spawnSync(process.execPath, [resolve('bin/ptr.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      return { code: r.status, stderr: r.stderr };
    };
    const prompt = spawn('sample', 'tiny.pt-recipe', '--prompt', 'the CAT');
    expect(prompt.code, prompt.stderr).toBe(2);
    expect(prompt.stderr).toMatch(/--prompt: the stage's chars tokenizer cannot encode "C"/);
    const stage = spawn('run', 'tiny.pt-recipe', '--stage', 'nosuch');
    expect(stage.code, stage.stderr).toBe(2);
    const out = spawn('compile', 'tiny.pt-recipe', '-o', 'corpus.txt');
    expect(out.code, out.stderr).toBe(1);
    expect(out.stderr).toMatch(/cannot mkdir corpus\.txt: a file is in the way/);
  });
});
