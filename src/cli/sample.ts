/**
 * `ptr sample FILE`: `ptr generate` with one prompt, under its first name and
 * option names (`--tokens` for `--max-tokens`; a positive `--temperature`). Kept
 * so that scripts written for it keep working; `ptr generate` is the command
 * with every option (batches of prompts, JSONL in and out, top-k, top-p).
 */
import { runGenerate } from './generate.js';
import type { Io } from './io.js';

export interface SampleCommandOptions {
  readonly stage?: string;
  readonly run?: string;
  readonly prompt?: string;
  /** A system message before the prompt (chat stages only). */
  readonly system?: string;
  /** Texts that end generation (besides eos). */
  readonly stop?: readonly string[];
  readonly tokens?: number;
  readonly temperature?: number;
  readonly seed?: number;
}

export async function runSample(io: Io, file: string, options: SampleCommandOptions): Promise<number> {
  const { tokens, ...rest } = options;
  return runGenerate(io, file, { ...rest, ...(tokens !== undefined ? { maxTokens: tokens } : {}), command: 'ptr sample' });
}
