/**
 * `ptr generate FILE`: replies from a stage's latest checkpoint, to one prompt
 * (`--prompt`, printed as it is generated) or to a file of them (`--prompts
 * FILE.jsonl`, one JSONL result per prompt, in order, to `--out` or stdout).
 * Prompts are built exactly as the stage's training sequences were (bos, the
 * chat template; runtime/prompt.ts); a reply ends where a trained one does
 * (eos), at a `--stop` string, or after `--max-tokens`. Prompts are generated
 * `--batch` at a time with a KV cache (runtime/textGenerator.ts).
 * `ptr sample` is this command with its older option names (sample.ts).
 */
import { readFileSync } from 'node:fs';
import type { ChatMessage } from '../check/chatTemplate.js';
import type { DatasetSpec } from '../ir/lower/types.js';
import { writeFileAtomic } from '../runtime/atomic.js';
import { UserError } from '../runtime/errors.js';
import type { StopReason } from '../runtime/generate.js';
import { requireCuda, type Device } from '../runtime/ort.js';
import { PromptEncodeError, type PromptInput } from '../runtime/prompt.js';
import { promptInputFromRow, TextGenerator, type TextResult } from '../runtime/textGenerator.js';
import type { Tokenizer } from '../runtime/tokenizer.js';
import { planStage } from '../stages/driver.js';
import { UsageError, type Io } from './io.js';
import { checkedModule, chosenStage } from './pipeline.js';
import { defaultRunDir } from './run.js';

export interface GenerateCommandOptions {
  readonly stage?: string;
  readonly run?: string;
  readonly prompt?: string;
  /** A JSONL file of prompts. */
  readonly prompts?: string;
  /** A system message before the prompt (chat stages only). */
  readonly system?: string;
  /** Texts that end generation (besides eos). */
  readonly stop?: readonly string[];
  readonly maxTokens?: number;
  /** 0: greedy. */
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  readonly repetitionPenalty?: number;
  readonly seed?: number;
  /** Where the JSONL results go (default: stdout). */
  readonly out?: string;
  readonly batch?: number;
  /** false: full recompute at every token instead of the KV cache. */
  readonly cache?: boolean;
  readonly device?: Device;
  readonly threads?: number;
  /** The command's name in messages (`ptr sample` runs this too). */
  readonly command?: string;
}

/** Defaults shared by `ptr generate` and `ptr sample`. */
export const GENERATE_DEFAULTS = { maxTokens: 300, temperature: 0.8, batch: 16, seed: 0 } as const;

export async function runGenerate(io: Io, file: string, options: GenerateCommandOptions): Promise<number> {
  const command = options.command ?? 'ptr generate';
  if (options.prompt !== undefined && options.prompts !== undefined) throw new UsageError('--prompt gives one prompt and --prompts a file of them: give one of the two');
  if (options.system !== undefined && options.prompts !== undefined) throw new UsageError('--system goes with --prompt; in a --prompts file, give each row a "system"');
  if (options.topP !== undefined && !(options.topP > 0 && options.topP <= 1)) throw new UsageError(`--top-p must be in (0, 1], not ${options.topP}`);
  if (options.device === 'cuda') requireCuda();
  const module = checkedModule(io, file);
  if (!module) return 1;
  const plan = planStage(module, chosenStage(module, options.stage), { steps: 1 });
  const generator = TextGenerator.forPlan(module, plan, { command, ...(options.device ? { device: options.device } : {}), ...(options.threads ? { threads: options.threads } : {}) });
  // The prompts are checked first: a mistake in them needs no trained model to be found.
  const batchMode = options.prompts !== undefined;
  const requests = batchMode ? readPromptsFile(options.prompts!, generator) : [singlePrompt(generator, options)];
  generator.loadWeights(options.run ?? defaultRunDir(file), file);

  const stops = options.stop ?? [];
  const stream = !batchMode && options.out === undefined ? streamer(io, stops) : null;
  const started = performance.now();
  const results = await generator.generate(
    requests.map((r) => r.input),
    {
      sampling: { temperature: options.temperature ?? GENERATE_DEFAULTS.temperature, ...(options.topK ? { topK: options.topK } : {}), ...(options.topP ? { topP: options.topP } : {}), ...(options.repetitionPenalty ? { repetitionPenalty: options.repetitionPenalty } : {}) },
      maxTokens: options.maxTokens ?? GENERATE_DEFAULTS.maxTokens,
      stopStrings: stops,
      seed: options.seed ?? GENERATE_DEFAULTS.seed,
      batch: options.batch ?? GENERATE_DEFAULTS.batch,
      cache: options.cache ?? true,
      ...(stream ? { onText: (_: number, text: string) => stream.grow(text) } : {}),
    },
  );
  const seconds = (performance.now() - started) / 1000;

  if (stream) {
    stream.finish(results[0]!.full);
    io.err(`stopped: ${describeStop(results[0]!.reason, generator.tokenizer, command)} after ${count(results[0]!.ids.length, 'token')}\n`);
    return 0;
  }
  const lines = results.map((r, i) => `${JSON.stringify(resultRow(requests[i]!.row, r, generator.tokenizer))}\n`).join('');
  if (options.out !== undefined) writeFileAtomic(options.out, lines);
  else io.out(lines);
  const tokens = results.reduce((n, r) => n + r.ids.length, 0);
  io.err(`generated ${count(results.length, 'reply', 'replies')}, ${count(tokens, 'token')} in ${seconds.toFixed(1)} s (${Math.round(tokens / Math.max(seconds, 1e-9))} tokens/s)${options.out !== undefined ? `: ${options.out}` : ''}\n`);
  return 0;
}

/** A prompt and the JSON row it came from (echoed in the result). */
interface PromptRequest {
  readonly input: PromptInput;
  readonly row: Record<string, unknown>;
}

/** The --prompt (and --system) as what the stage's model continues from; checked against the tokenizer. */
function singlePrompt(generator: TextGenerator, options: GenerateCommandOptions): PromptRequest {
  const dataset = generator.dataset;
  const sources = new Map<string, string>();
  let input: PromptInput;
  if (dataset.format === 'chat') {
    const messages: ChatMessage[] = [];
    const add = (role: ChatMessage['role'], content: string | undefined, option: string): void => {
      if (content === undefined) return;
      sources.set(`messages[${messages.length}].content`, option);
      messages.push({ role, content });
    };
    add('system', options.system, '--system');
    add('user', options.prompt, '--prompt');
    input = { format: 'chat', messages, template: dataset.chatTemplate! };
  } else {
    if (options.system !== undefined) throw new UsageError(`--system is for chat data; this stage trains on ${dataset.format} data, so give the whole prompt with --prompt`);
    // The default text prompt (a newline) has no option to blame.
    if (options.prompt !== undefined) for (const field of ['text', 'prompt']) sources.set(field, '--prompt');
    // A text model starts a fresh line by default; a JSONL model starts from bos (an empty prompt).
    input = dataset.format === 'text' ? { format: 'text', text: options.prompt ?? '\n' } : { format: formatOf(dataset), prompt: options.prompt ?? '' };
  }
  let ids: Int32Array;
  try {
    ids = generator.promptTokens(input);
  } catch (e) {
    if (!(e instanceof PromptEncodeError)) throw e;
    const option = sources.get(e.field);
    if (option === undefined && e.field === 'text') throw new UsageError("--prompt is needed: the stage's tokenizer cannot encode a newline (the default prompt)");
    throw new UsageError(`${option ?? `the chat template's ${e.field}`}: the stage's ${e.reason}`);
  }
  if (ids.length === 0) throw new UsageError("--prompt is needed: the stage's tokenizer has no bos token to start from");
  const row: Record<string, unknown> = input.format === 'chat' ? { messages: input.messages } : { prompt: options.prompt ?? (input.format === 'text' ? input.text : '') };
  return { input, row };
}

function formatOf(dataset: DatasetSpec): 'prompt_completion' | 'preference' {
  return dataset.format === 'preference' ? 'preference' : 'prompt_completion';
}

/** The rows of a prompts file, each checked against the stage's format and tokenizer; errors name file and line. */
function readPromptsFile(path: string, generator: TextGenerator): PromptRequest[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`--prompts: cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const requests: PromptRequest[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const at = `${path}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${at}: not valid JSON: ${(e as Error).message}`);
    }
    const input = promptInputFromRow(row, generator.dataset, at);
    try {
      generator.promptTokens(input);
    } catch (e) {
      if (e instanceof PromptEncodeError) throw new UserError(`${at}: ${e.field === 'text' ? '"prompt"' : `"${e.field}"`}: the stage's ${e.reason}`);
      throw e;
    }
    requests.push({ input, row: row as Record<string, unknown> });
  });
  if (requests.length === 0) throw new UserError(`--prompts: ${path} has no prompts (one JSON object per line)`);
  return requests;
}

/** A result row: the prompt row as given, the completion, why it ended and how many tokens it has. */
function resultRow(row: Record<string, unknown>, r: TextResult, tok: Tokenizer): Record<string, unknown> {
  const finish = r.reason.kind === 'stop-token' ? 'eos' : r.reason.kind === 'stop-string' ? 'stop' : 'length';
  const stop = r.reason.kind === 'stop-string' ? { stop: r.reason.text } : r.reason.kind === 'stop-token' ? { stop: tok.decode([r.reason.id], { showSpecials: true }) } : {};
  return { ...row, completion: r.completion, finish, ...stop, tokens: r.ids.length };
}

/**
 * Prints a growing text as it grows, holding back its last characters until
 * they cannot become part of a stop string (or change as more tokens decode),
 * so the streamed bytes are exactly the final text's.
 */
function streamer(io: Io, stops: readonly string[]): { grow(text: string): void; finish(full: string): void } {
  const hold = Math.max(0, ...stops.map((s) => s.length)) + 8;
  let printed = '';
  return {
    grow(text) {
      let safe = text.length - hold;
      for (const s of stops) {
        const at = text.indexOf(s, printed.length);
        if (at >= 0) safe = Math.min(safe, at);
      }
      if (safe > printed.length && text.startsWith(printed)) {
        io.out(text.slice(printed.length, safe));
        printed = text.slice(0, safe);
      }
    },
    finish(full) {
      io.out(`${full.startsWith(printed) ? full.slice(printed.length) : `\n${full}`}\n`);
    },
  };
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

function describeStop(reason: StopReason, tok: Tokenizer, command: string): string {
  switch (reason.kind) {
    case 'stop-token':
      return `the model ended its reply (${tok.decode([reason.id], { showSpecials: true })})`;
    case 'stop-string':
      return `stop string ${JSON.stringify(reason.text)}`;
    case 'length':
      return `${command === 'ptr sample' ? '--tokens' : '--max-tokens'} ${reason.tokens} reached`;
  }
}
