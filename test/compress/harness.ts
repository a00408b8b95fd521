/**
 * Shared by the compression tests that run whole recipes: a fresh folder with
 * examples/arith's corpus beside the recipe (recipes read only their own
 * folder), the recipe checked, and every stage and deploy run by the pipeline
 * driver with its run folder inside.
 */
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { checkFiles, type ModuleInfo } from '../../src/check/index.js';
import { runPipeline, type PipelineResult } from '../../src/stages/driver.js';

export const CORPUS = resolve(__dirname, '..', '..', 'examples', 'arith', 'data', 'corpus.txt');

export interface RecipeRun {
  /** The folder holding the recipe, `corpus.txt`, and the run folder `run/`. */
  readonly dir: string;
  readonly module: ModuleInfo;
  readonly result: PipelineResult;
}

/** Writes `text` (which may say `${dir}` for the folder) as `<name>.pt-recipe` in a new folder and runs it. */
export async function runRecipe(name: string, text: (dir: string) => string): Promise<RecipeRun> {
  const dir = mkdtempSync(join(tmpdir(), `ptr-${name}-`));
  copyFileSync(CORPUS, join(dir, 'corpus.txt'));
  const recipe = join(dir, `${name}.pt-recipe`);
  writeFileSync(recipe, text(dir));
  const checked = checkFiles([recipe]);
  expect(checked.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const module = checked.entryModules[0]!;
  const result = await runPipeline(module, { recipe, runDir: join(dir, 'run'), device: 'cpu', resume: false, version: 'test' }, () => {});
  return { dir, module, result };
}

/**
 * The start every compression test recipe shares: arithmetic characters, a
 * Transformer `lm` of width `dim` (2 layers, 2 heads, context 32), the corpus in
 * windows of 32, and `pretrain`, `steps` steps of next-token training.
 */
export function pretrainedLm(dim: number, steps: number): string {
  return `import std.nn { Transformer }
import std.losses { next_token }
tokenizer tok = chars("0123456789+-*=\\n", specials: [pad, bos, eos])
model lm = Transformer(vocab: tok.vocab, ctx: 32, dim: ${dim}, layers: 2, heads: 2)
dataset corpus = text("corpus.txt", tokenizer: tok, block: 32, split: 0.95)
stage pretrain: train lm on corpus {
  loss      = next_token(lm(batch.tokens), batch.tokens)
  optimizer = adamw(lr: 3e-3)
  batch     = 8
  steps     = ${steps}
}
`;
}
