/**
 * Text generation from a stage's trained model, as a library (`ptr generate`
 * and `ptr sample` call it; generate and RL stages are meant to): the stage's
 * model and tokenizer, prompts built exactly as its training sequences were
 * (runtime/prompt.ts: bos, the chat template), batches of prompts generated in
 * lockstep with a KV cache (runtime/generateSession.ts), tokens chosen by the
 * sampler (runtime/generate.ts), each reply ending where a trained one does (eos)
 * or at a stop string.
 */
import { CHAT_ROLES, type ChatMessage } from '../check/chatTemplate.js';
import type { ModuleInfo } from '../check/modules.js';
import type { DatasetSpec } from '../ir/lower/types.js';
import { dynamicGraphSource, logitsShape, lowerForward, stageGraphSource } from '../ir/lower/inferenceStage.js';
import type { StagePlan } from '../ir/lower/plan.js';
import { latestCheckpointDir, loadCheckpoint } from './checkpoint.js';
import { runtimeTokenizer } from './datasets.js';
import { UserError } from './errors.js';
import { generatableIds, generateAll, Sampler, type Generation, type SamplingOptions } from './generate.js';
import { CachedLogits, RecomputedLogits, SessionPool, type LogitsOptions, type LogitsSource } from './generateSession.js';
import type { Device } from './ort.js';
import { promptIds, replyStops, sequenceHead, type PromptInput } from './prompt.js';
import type { Tokenizer } from './tokenizer.js';

/** What one generation call asks for. */
export interface GenerationSettings {
  readonly sampling: SamplingOptions;
  readonly maxTokens: number;
  /** Texts that end a reply besides eos. */
  readonly stopStrings: readonly string[];
  readonly seed: number;
  /** Prompts generated together (one batch); later prompts wait for the next batch. */
  readonly batch: number;
  /** false: recompute the full forward at every token instead of using the KV cache (slower; for comparison). */
  readonly cache: boolean;
  /** Called as each prompt's reply grows: its index and the text so far (prompt included; for streaming). */
  readonly onText?: (index: number, text: string) => void;
}

/** One reply. */
export interface TextResult extends Generation {
  /** The prompt's tokens (bos and template included). */
  readonly prompt: Int32Array;
  /** The prompt and the reply as one text (decoded together, so word-level tokenizers space the seam), cut before a stop string. */
  readonly full: string;
  /** The reply alone, cut before a stop string. */
  readonly completion: string;
}

/** The stage's model is not a language model: it cannot generate. */
export class NotALanguageModelError extends UserError {}

export class TextGenerator {
  readonly tokenizer: Tokenizer;
  /** The stage's training data: its format and chat template say how prompts are built. */
  readonly dataset: DatasetSpec;

  private constructor(
    readonly module: ModuleInfo,
    readonly plan: StagePlan,
    private weights: Map<string, Float32Array> | null,
    private readonly device: Device,
    private readonly threads: number | undefined,
    command: string,
  ) {
    const data = plan.data['train'];
    if (!data) throw new NotALanguageModelError(`stage ${plan.stage} has no training data to take a tokenizer and prompt format from`);
    this.dataset = data.spec;
    this.tokenizer = runtimeTokenizer(this.dataset.tokenizer);
    const outputShape = logitsShape(lowerForward(module, plan.stage, 1, 1));
    if (outputShape?.length !== 3 || outputShape[2] !== this.tokenizer.vocab) {
      throw new NotALanguageModelError(
        `stage ${plan.stage} trains ${plan.model}, which outputs [${outputShape?.join(', ') ?? ''}]; ${command} needs a language model, whose output is next-token logits [batch, length, ${this.tokenizer.vocab}]`,
      );
    }
  }

  /**
   * The generator of a planned stage; its weights are loaded by `loadWeights`.
   * `command` names what asked, in the error for a model that is not a language model.
   */
  static forPlan(module: ModuleInfo, plan: StagePlan, options: { device?: Device; threads?: number; command?: string } = {}): TextGenerator {
    return new TextGenerator(module, plan, null, options.device ?? 'cpu', options.threads, options.command ?? 'text generation');
  }

  /**
   * Loads the stage's latest checkpoint from `runDir`; a UserError saying to run
   * the stage when there is none.
   */
  loadWeights(runDir: string, recipeFile: string): void {
    const dir = latestCheckpointDir(runDir, this.plan.stage);
    if (!dir) throw new UserError(`no checkpoint of stage ${this.plan.stage} in ${runDir}/checkpoints; run 'ptr run ${recipeFile}' first`);
    this.weights = loadCheckpoint(
      dir,
      this.plan.params.filter((p) => p.model === this.plan.model),
      null,
    ).params;
  }

  /** Uses these weights (by input name) instead of a checkpoint's. */
  useWeights(weights: Map<string, Float32Array>): void {
    this.weights = weights;
  }

  /** A prompt's tokens, built as training built its sequences. */
  promptTokens(input: PromptInput): Int32Array {
    return promptIds(this.tokenizer, input);
  }

  /** Generates a reply to every prompt, in order; `settings.batch` prompts at a time. */
  async generate(inputs: readonly PromptInput[], settings: GenerationSettings): Promise<TextResult[]> {
    if (!this.weights) throw new Error('TextGenerator.generate: no weights loaded');
    const tok = this.tokenizer;
    const prompts = inputs.map((input) => this.promptTokens(input));
    const allowed = generatableIds(tok);
    const sampler = new Sampler(settings.sampling, allowed, settings.seed);
    const seqLen = this.dataset.seqLen!;
    // The plan's generation graphs have dynamic sizes: one prefill and one decode session serve every batch.
    // Without them (attention the cache derivation does not recognise), the full forward at every token.
    const generation = this.plan.generation;
    const source = generation ? dynamicGraphSource(this.module, this.plan.stage, generation.maxPositions) : stageGraphSource(this.module, this.plan.stage);
    const useCache = settings.cache && generation !== null && generation !== undefined;
    const pool = new SessionPool(this.weights, { device: this.device, ...(this.threads ? { threads: this.threads } : {}) });
    // Stops mirror what closes a trained reply: eos, or the chat template's end without one.
    const stops = inputs.length ? replyStops(tok, inputs[0]!) : { ids: [], strings: [] };
    const results: TextResult[] = [];
    try {
      for (let first = 0; first < inputs.length; first += settings.batch) {
        const group = inputs.slice(first, first + settings.batch);
        const groupPrompts = prompts.slice(first, first + settings.batch);
        const options: LogitsOptions = {
          // A next-token loss never trains the prediction at a sequence's last position: contexts hold at most T − 1 tokens.
          contextLimit: Math.max(2, Math.min(seqLen - 1, generation?.maxPositions ?? Infinity)),
          head: sequenceHead(tok, group[0]!.format).length,
          maxTokens: settings.maxTokens,
          pad: tok.special('pad') ?? 0,
          device: this.device,
          ...(this.threads ? { threads: this.threads } : {}),
          pool,
        };
        const logits: LogitsSource = useCache ? new CachedLogits(source, this.weights, options) : new RecomputedLogits(source, this.weights, options);
        const generated: number[][] = groupPrompts.map(() => []);
        let outputs: Generation[];
        try {
          outputs = await generateAll(
            groupPrompts,
            async (active) => {
              const rows = await logits.next(active.map((s) => ({ index: s.index, ids: s.ids })));
              const V = logits.vocab;
              return active.map((s, i) => sampler.pick({ index: first + s.index, ids: s.ids }, rows.subarray(i * V, (i + 1) * V)));
            },
            {
              maxTokens: settings.maxTokens,
              stopIds: stops.ids,
              stopStrings: [...stops.strings, ...settings.stopStrings],
              decode: (ids) => tok.decode(ids),
              ...(settings.onText
                ? {
                    onToken: (index: number, id: number) => {
                      generated[index]!.push(id);
                      settings.onText!(first + index, tok.decode([...groupPrompts[index]!, ...generated[index]!]));
                    },
                  }
                : {}),
            },
          );
        } finally {
          await logits.release();
        }
        outputs.forEach((g, i) => results.push(this.result(groupPrompts[i]!, g)));
      }
    } finally {
      await pool.release();
    }
    return results;
  }

  private result(prompt: Int32Array, g: Generation): TextResult {
    const tok = this.tokenizer;
    // Decoded as one sequence, so word-level tokenizers put their spaces at the seam too;
    // what follows a stop string is cut off.
    const whole = tok.decode([...prompt, ...g.ids]);
    const cut = tok.decode(g.ids).length - (g.text ?? '').length;
    const full = whole.slice(0, whole.length - cut);
    const promptText = tok.decode(prompt);
    const completion = full.startsWith(promptText) ? full.slice(promptText.length) : (g.text ?? '');
    return { ...g, prompt, full, completion };
  }
}

/**
 * One row of a prompts file (JSONL) as what the stage's model continues from:
 * `{"prompt": "..."}` for every format; for chat data also
 * `{"messages": [{"role", "content"}, ...]}`, and `"system"` beside `"prompt"`.
 * `at` (`prompts.jsonl:3`) starts every error message.
 */
export function promptInputFromRow(row: unknown, dataset: DatasetSpec, at: string): PromptInput {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new UserError(`${at}: expected a JSON object with "prompt"${dataset.format === 'chat' ? ' or "messages"' : ''}`);
  const record = row as Record<string, unknown>;
  const text = (key: string): string | undefined => {
    const v = record[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new UserError(`${at}: "${key}" must be a string, not ${JSON.stringify(v)}`);
    return v;
  };
  if (dataset.format === 'chat') {
    const template = dataset.chatTemplate!;
    if (record['messages'] !== undefined) {
      const messages = record['messages'];
      if (!Array.isArray(messages) || messages.length === 0) throw new UserError(`${at}: "messages" must be a non-empty array of {"role", "content"} messages`);
      return {
        format: 'chat',
        template,
        messages: messages.map((m: unknown, k): ChatMessage => {
          const msg = m as { role?: unknown; content?: unknown } | null;
          if (msg === null || typeof msg !== 'object' || typeof msg.content !== 'string' || typeof msg.role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(msg.role)) {
            throw new UserError(`${at}: messages[${k}] must be {"role": ${CHAT_ROLES.map((r) => `"${r}"`).join(' | ')}, "content": a string}`);
          }
          return { role: msg.role as ChatMessage['role'], content: msg.content };
        }),
      };
    }
    const prompt = text('prompt');
    if (prompt === undefined) throw new UserError(`${at}: a chat prompt needs "messages" or "prompt"`);
    const system = text('system');
    return { format: 'chat', template, messages: [...(system === undefined ? [] : [{ role: 'system' as const, content: system }]), { role: 'user', content: prompt }] };
  }
  const prompt = text('prompt');
  if (prompt === undefined) throw new UserError(`${at}: a prompt row needs "prompt" (a string)`);
  if (dataset.format === 'text') return { format: 'text', text: prompt };
  return { format: dataset.format === 'preference' ? 'preference' : 'prompt_completion', prompt };
}
