/**
 * `ptr sample FILE`: generate text from a stage's latest checkpoint, so a user
 * can see what the model learned. The prompt is built by runtime/prompt.ts, the
 * functions that built the stage's training sequences (bos, the chat template),
 * and generation stops where a trained reply ends (eos), at a `--stop` string,
 * or after `--tokens`. The inference graph has a fixed length T;
 * the context is the last T − 1 tokens, right-padded (the model is causal, so
 * padding after the last real token does not change its logits). Not T: a
 * next-token loss never trains the prediction made at the last position.
 */
import { optimize } from '../ir/passes/index.js';
import { latestCheckpointDir, loadCheckpoint } from '../runtime/checkpoint.js';
import { createSession, ort, type OrtTensor } from '../runtime/ort.js';
import { Prng } from '../runtime/prng.js';
import { generate, generatableIds, sampleToken, type StopReason } from '../runtime/generate.js';
import { promptIds, PromptEncodeError, replyStops, sequenceHead, type PromptInput } from '../runtime/prompt.js';
import type { Tokenizer } from '../runtime/tokenizer.js';
import type { ChatMessage } from '../check/chatTemplate.js';
import type { DatasetSpec } from '../ir/lower/types.js';
import { runtimeTokenizer } from '../runtime/datasets.js';
import { emitModel } from '../../targets/onnx/emit.js';
import { UsageError, type Io } from './io.js';
import { UserError } from '../runtime/errors.js';
import { checkedModule, chosenStage } from './pipeline.js';
import { planStage } from '../stages/driver.js';
import type { TrainPlan } from '../ir/lower/trainStage.js';
import { defaultRunDir } from './run.js';

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
  const module = checkedModule(io, file);
  if (!module) return 1;
  const plan = planStage(module, chosenStage(module, options.stage), { steps: 1 }) as TrainPlan;
  const inference = plan.graphs['inference']!;
  const dataset = plan.data['train']!.spec;
  const tok = runtimeTokenizer(dataset.tokenizer);
  const logitsShape = inference.outputs.find((o) => o.name === 'logits')?.value.shape ?? [];
  if (logitsShape.length !== 3 || logitsShape[2] !== tok.vocab) {
    throw new UserError(`stage ${plan.stage} trains ${plan.model}, which outputs [${logitsShape.join(', ')}]; ptr sample needs a language model, whose output is next-token logits [batch, length, ${tok.vocab}]`);
  }
  // The prompt is checked first: a mistake in it needs no trained model to be found.
  const { input, sources } = promptInput(dataset, options);
  const prompt = buildPrompt(tok, input, sources);
  const stops = replyStops(tok, input);
  const runDir = options.run ?? defaultRunDir(file);
  const dir = latestCheckpointDir(runDir, plan.stage);
  if (!dir) {
    io.err(`no checkpoint of stage ${plan.stage} in ${runDir}/checkpoints; run 'ptr run ${file}' first\n`);
    return 1;
  }
  const ck = loadCheckpoint(dir, plan.params.filter((p) => p.model === plan.model), null);
  const model = emitModel(optimize(inference).graph, { initializers: ck.params });
  const session = await createSession(model.bytes);
  const T = inference.inputs.find((v) => v.inputName === 'tokens')!.shape[1]!;
  const vocab = tok.vocab;
  const pad = tok.special('pad') ?? 0;
  const prng = new Prng(options.seed ?? 0);
  const temperature = options.temperature ?? 0.8;
  const allowed = generatableIds(tok);
  let result;
  try {
    // A context longer than the window loses its oldest tokens after the head (bos), as
    // training truncates a long prompt.
    const head = Array.from(sequenceHead(tok, input.format));
    const next = async (ids: readonly number[]): Promise<number> => {
      const context = ids.length <= T - 1 ? ids : [...head, ...ids.slice(ids.length - (T - 1 - head.length))];
      const window = new BigInt64Array(T).fill(BigInt(pad));
      context.forEach((id, i) => (window[i] = BigInt(id)));
      const out = await session.run({ tokens: new ort.Tensor('int64', window, [1, T]) });
      const logits = (out['logits'] as OrtTensor).data as Float32Array;
      return sampleToken(logits.subarray((context.length - 1) * vocab, context.length * vocab), temperature, prng, allowed);
    };
    result = await generate(prompt, next, {
      maxTokens: options.tokens ?? 300,
      stopIds: stops.ids,
      stopStrings: [...stops.strings, ...(options.stop ?? [])],
      decode: (ids) => tok.decode(ids),
    });
  } finally {
    await session.release();
  }
  // Decoded as one sequence, so word-level tokenizers put their spaces at the seam too;
  // what follows a stop string is cut off.
  const full = tok.decode([...prompt, ...result.ids]);
  const cut = tok.decode(result.ids).length - (result.text ?? '').length;
  io.out(`${full.slice(0, full.length - cut)}\n`);
  io.err(`stopped: ${describeStop(result.reason, tok)} after ${result.ids.length} token${result.ids.length === 1 ? '' : 's'}\n`);
  return 0;
}

/**
 * What the stage's model continues from, by its training data's format, and which
 * option each field of it came from (for messages).
 */
function promptInput(dataset: DatasetSpec, options: SampleCommandOptions): { input: PromptInput; sources: Map<string, string> } {
  if (dataset.format === 'chat') {
    const messages: ChatMessage[] = [];
    const sources = new Map<string, string>();
    const add = (role: ChatMessage['role'], content: string | undefined, option: string): void => {
      if (content === undefined) return;
      sources.set(`messages[${messages.length}].content`, option);
      messages.push({ role, content });
    };
    add('system', options.system, '--system');
    add('user', options.prompt, '--prompt');
    return { input: { format: 'chat', messages, template: dataset.chatTemplate! }, sources };
  }
  if (options.system !== undefined) throw new UsageError(`--system is for chat data; this stage trains on ${dataset.format} data, so give the whole prompt with --prompt`);
  // The default text prompt (a newline) has no option to blame.
  const sources = new Map(options.prompt === undefined ? [] : [['text', '--prompt'], ['prompt', '--prompt']]);
  // A text model starts a fresh line by default; a JSONL model starts from bos (an empty prompt).
  if (dataset.format === 'text') return { input: { format: 'text', text: options.prompt ?? '\n' }, sources };
  return { input: { format: dataset.format === 'preference' ? 'preference' : 'prompt_completion', prompt: options.prompt ?? '' }, sources };
}

/** The prompt's ids; a prompt the tokenizer cannot encode, or an empty one, is the user's to fix. */
function buildPrompt(tok: Tokenizer, input: PromptInput, sources: ReadonlyMap<string, string>): Int32Array {
  let ids: Int32Array;
  try {
    ids = promptIds(tok, input);
  } catch (e) {
    if (!(e instanceof PromptEncodeError)) throw e;
    const option = sources.get(e.field);
    if (option === undefined && e.field === 'text') throw new UsageError("--prompt is needed: the stage's tokenizer cannot encode a newline (the default prompt)");
    throw new UsageError(`${option ?? `the chat template's ${e.field}`}: the stage's ${e.reason}`);
  }
  if (ids.length === 0) throw new UsageError("--prompt is needed: the stage's tokenizer has no bos token to start from");
  return ids;
}

function describeStop(reason: StopReason, tok: Tokenizer): string {
  switch (reason.kind) {
    case 'stop-token':
      return `the model ended its reply (${tok.decode([reason.id], { showSpecials: true })})`;
    case 'stop-string':
      return `stop string ${JSON.stringify(reason.text)}`;
    case 'length':
      return `--tokens ${reason.tokens} reached`;
  }
}
