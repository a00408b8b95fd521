/**
 * Stages that would train nothing or crash at run time are check-time errors:
 * a reference/teacher that is the trained model, frozen(m) without a checkpoint,
 * a loss that ignores the trained model, eval data without a usable validation
 * split, JSONL training data without max_len. The golden fixture
 * (test/fixtures/diagnostics/noop.pt-recipe) shows every message; these tests pin
 * the hints and the rules' edges.
 */
import { dirname, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/index.js';
import { readFromDisk } from '../../src/check/modules.js';
import { textSplitSizes } from '../../src/check/splits.js';
import { JsonlDataset, TextCorpus } from '../../src/runtime/data.js';
import { chars } from '../../src/runtime/tokenizer.js';

const ALPHABET = '0123456789+=\n';

const HEADER = `
import std.nn     { Transformer }
import std.losses { next_token, dpo }

tokenizer tok = chars("0123456789+=\\n", specials: [pad, bos, eos])
model policy = Transformer(vocab: tok.vocab, ctx: 16, dim: 16, layers: 1, heads: 2)
model student = Transformer(vocab: tok.vocab, ctx: 16, dim: 8, layers: 1, heads: 2)
`;

/** Checks a recipe whose data files are held in memory (paths relative to the recipe); the stdlib comes from disk. */
function checkWith(text: string, files: Record<string, string>) {
  const path = resolve('virtual/recipe.pt-recipe');
  return checkSource(text, path, {
    readFile: (absPath, maxBytes = Infinity) => {
      const data = files[absPath.slice(dirname(path).length + 1)];
      return data === undefined ? readFromDisk(absPath, maxBytes) : data.slice(0, maxBytes);
    },
  });
}

function diagnostics(text: string, files: Record<string, string> = {}): { code: string; message: string; hint: string | null }[] {
  return checkWith(text, files).diagnostics.map((d) => ({ code: d.code, message: d.message, hint: d.hint }));
}

const digits = (n: number): string => Array.from({ length: n }, (_, i) => ALPHABET[i % 10]).join('');
const qaRows = (n: number): string => Array.from({ length: n }, (_, i) => JSON.stringify({ prompt: `${i % 10}+1=`, completion: String((i % 10) + 1) }) + '\n').join('');

const PIPELINE = `${HEADER}
dataset corpus = text("corpus.txt", tokenizer: tok, block: 8, split: 0.5)
dataset prefs = jsonl("prefs.jsonl", format: preference, tokenizer: tok, max_len: 12)

stage pre: train policy on corpus { loss = next_token(policy(batch.tokens), batch.tokens) }
stage sft: train policy on corpus after pre { loss = next_token(policy(batch.tokens), batch.tokens) }
`;
const FILES = {
  'corpus.txt': digits(400),
  'prefs.jsonl': Array.from({ length: 4 }, () => JSON.stringify({ prompt: '1+1=', chosen: '2', rejected: '3' }) + '\n').join(''),
};

/** Diagnostics of a DPO stage after the pipeline's sft, with the given reference. */
const alignWith = (reference: string) =>
  diagnostics(`${PIPELINE}
stage align: train policy on prefs after sft {
  reference = ${reference}
  loss = dpo(policy, reference, batch)
}`, FILES);

describe('a model setting that is the trained model', () => {
  it('is an error whose hint names the nearest earlier stage that trains it', () => {
    const d = alignWith('policy');
    expect(d).toEqual([
      {
        code: 'setting-is-target',
        message: "'reference' is policy, the model stage 'align' trains, so it would change with every update instead of staying fixed",
        hint: 'use a frozen checkpoint: reference = frozen(policy @ sft)',
      },
    ]);
  });

  it('accepts a frozen checkpoint and a checkpoint copy of the trained model', () => {
    for (const reference of ['frozen(policy @ sft)', 'policy @ pre']) {
      expect(alignWith(reference)).toEqual([]);
    }
  });

  it('covers a teacher that is the student', () => {
    const d = diagnostics(`${PIPELINE}
stage distil: train student on corpus after sft {
  teacher = student
  loss = next_token(student(batch.tokens), batch.tokens) + mean(teacher(batch.tokens))
}`, FILES);
    expect(d.map((x) => x.code)).toEqual(['setting-is-target']);
    expect(d[0]!.hint).toBe('use a frozen checkpoint of an earlier stage that trains student: teacher = frozen(student @ STAGE)');
  });
});

describe('frozen(m) without a checkpoint', () => {
  it('is an error naming the latest ancestor that trains m, inside a stage', () => {
    const d = alignWith('frozen(policy)');
    expect(d).toEqual([
      {
        code: 'frozen-needs-checkpoint',
        message: 'frozen(policy): policy is not a checkpoint; frozen(...) needs one (model @ stage) to know which trained weights to keep',
        hint: 'name the checkpoint to freeze: frozen(policy @ sft)',
      },
    ]);
  });

  it('says that an untrained model would be its random initial weights', () => {
    const d = diagnostics(`${HEADER}\nmodel copy = frozen(student)\n`);
    expect(d.map((x) => x.code)).toEqual(['frozen-needs-checkpoint']);
    expect(d[0]!.hint).toContain('no earlier stage trains student, so frozen(student) would be its random initial weights');
  });
});

describe('a loss that does not use the trained model', () => {
  const stage = (loss: string, extra = ''): string => `${PIPELINE}
fn through_global(tokens: i64[B, T]) -> f32 = next_token(policy(tokens), tokens)
stage s: train policy on corpus after sft {
  teacher = frozen(policy @ sft)
${extra}  loss = ${loss}
}`;

  it('is an error, also when the model only appears frozen or at another checkpoint', () => {
    for (const loss of ['next_token(teacher(batch.tokens), batch.tokens)', 'next_token((policy @ pre)(batch.tokens), batch.tokens)', 'mean(cast(batch.tokens, f32)) * 0.0']) {
      expect(diagnostics(stage(loss), FILES).map((x) => x.code), loss).toEqual(['loss-ignores-target']);
    }
  });

  it('sees the model through lets, settings and the recipe own functions', () => {
    expect(diagnostics(stage('next_token(logits, batch.tokens)', '  let logits = policy(batch.tokens)\n'), FILES)).toEqual([]);
    expect(diagnostics(stage('through_global(batch.tokens)'), FILES)).toEqual([]);
  });
});

describe('eval data and JSONL length', () => {
  it('eval on data without a split is an error', () => {
    const d = diagnostics(`${HEADER}
dataset corpus = text("corpus.txt", tokenizer: tok, block: 8)
stage pre: train policy on corpus {
  loss = next_token(policy(batch.tokens), batch.tokens)
  eval every 10 on corpus
}`, FILES);
    expect(d).toEqual([
      {
        code: 'eval-without-validation',
        message: 'eval every 10 on corpus: corpus has no validation split',
        hint: 'give it one: text("corpus.txt", tokenizer: tok, block: 8, split: 0.9)',
      },
    ]);
  });

  it('eval data must give batches the loss can be computed on', () => {
    const recipe = (evalData: string): string => `${HEADER}
dataset corpus = text("corpus.txt", tokenizer: tok, block: 8)
dataset qa = jsonl("qa.jsonl", format: prompt_completion, tokenizer: tok, max_len: 8, split: 0.5)
dataset long = jsonl("qa.jsonl", format: prompt_completion, tokenizer: tok, max_len: 32, split: 0.5)
dataset prefs = jsonl("prefs.jsonl", format: preference, tokenizer: tok, max_len: 8, split: 0.5)
stage pre: train policy on corpus {
  loss = next_token(policy(batch.tokens), batch.tokens)
  batch = 2
  eval every 10 on ${evalData}
}`;
    const files = { ...FILES, 'corpus.txt': digits(64), 'qa.jsonl': qaRows(8) };
    expect(diagnostics(recipe('qa.val'), files)).toEqual([]);
    expect(diagnostics(recipe('prefs.val'), files).map((x) => x.message)).toEqual(['eval every 10 on prefs.val: its batches (preference data) have no batch.tokens, which the loss reads']);
    // Rows of 32 tokens do not fit the model's context of 16.
    expect(diagnostics(recipe('long.val'), files).map((x) => x.message)).toEqual(['eval every 10 on long.val: the loss cannot be computed on its batches (prompt_completion data)']);
  });

  it('a train stage on JSONL data without max_len is an error', () => {
    const d = diagnostics(`${HEADER}
dataset qa = jsonl("qa.jsonl", format: prompt_completion, tokenizer: tok)
stage sft: train policy on qa { loss = next_token(policy(batch.tokens), batch.tokens) }`, { 'qa.jsonl': qaRows(4) });
    expect(d.map((x) => [x.code, x.message])).toEqual([['missing-max-len', 'dataset qa has no max_len: a train stage needs one (its graphs are built for one sequence length)']]);
  });

  // The checker sizes the validation split with the runtime's own arithmetic (check/splits.ts):
  // at batch = the runtime's count of validation examples eval is accepted, at one more it is not.
  const textCases: [number, number, number][] = [[400, 8, 0.9], [401, 7, 0.95], [123, 5, 0.5], [1000, 16, 0.97]];
  it.each(textCases)('text of %i tokens, block %i, split %f: the same validation size as the runtime', (tokens, block, split) => {
    const corpus = TextCorpus.fromText(digits(tokens), chars(ALPHABET, ['pad', 'bos', 'eos']), { block, split, seed: 0 });
    const runtimeVal = corpus.valWindows;
    const recipe = (batch: number): string => `${HEADER}
dataset corpus = text("corpus.txt", tokenizer: tok, block: ${block}, split: ${split})
stage pre: train policy on corpus {
  loss = next_token(policy(batch.tokens), batch.tokens)
  batch = ${batch}
  eval every 10 on corpus.val
}`;
    const files = { 'corpus.txt': digits(tokens) };
    if (runtimeVal > 0) expect(diagnostics(recipe(runtimeVal), files)).toEqual([]);
    expect(diagnostics(recipe(runtimeVal + 1), files).map((x) => x.code)).toEqual(['split-too-small']);
  });

  const rowCases: [number, number][] = [[10, 0.8], [7, 0.5], [23, 0.9], [3, 0.34]];
  it.each(rowCases)('JSONL of %i rows, split %f: the same validation size as the runtime', (rows, split) => {
    const data = JsonlDataset.fromText(qaRows(rows), 'prompt_completion', chars(ALPHABET, ['pad', 'bos', 'eos']), { maxLen: 8, split, seed: 0 });
    const recipe = (batch: number): string => `${HEADER}
dataset qa = jsonl("qa.jsonl", format: prompt_completion, tokenizer: tok, max_len: 8, split: ${split})
stage sft: train policy on qa {
  loss = next_token(policy(batch.tokens), batch.tokens)
  batch = ${batch}
  eval every 10 on qa.val
}`;
    const files = { 'qa.jsonl': qaRows(rows) };
    if (data.valRows > 0) expect(diagnostics(recipe(data.valRows), files)).toEqual([]);
    expect(diagnostics(recipe(data.valRows + 1), files)[0]?.message).toBe(`eval every 10 on qa.val: its validation split holds ${data.valRows} ${data.valRows === 1 ? 'row' : 'rows'}, fewer than one batch of ${data.valRows + 1}`);
  });

  it('skips the size check for a file larger than the checker reads', () => {
    // Past the 16 MiB cap the checker cannot count the data; the runtime reports a short split instead.
    const big = digits(17 * 1024 * 1024);
    expect(textSplitSizes(big.length, 16, 0.999995).val).toBeLessThan(8);
    const d = diagnostics(`${HEADER}
dataset corpus = text("corpus.txt", tokenizer: tok, block: 16, split: 0.999995)
stage pre: train policy on corpus {
  loss = next_token(policy(batch.tokens), batch.tokens)
  eval every 10 on corpus.val
}`, { 'corpus.txt': big });
    expect(d).toEqual([]);
  });
});
