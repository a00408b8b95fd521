/**
 * How a model's input is laid out, in one place for training (data.ts builds every
 * JSONL sequence from these functions) and generation (`ptr sample` builds its
 * prompt with promptIds), so that a prompt at sampling time is token for token
 * the start of the sequences the model was trained on.
 *
 *   text               the text's tokens (text corpora have no bos)
 *   prompt_completion  bos + prompt | completion + eos
 *   preference         bos + prompt | chosen + eos  (and rejected + eos)
 *   chat               bos + each message rendered with the chat template;
 *                      a prompt ends with the assistant prefix
 *
 * (`|`: where the prompt ends and the trained tokens begin; bos and eos appear
 * only when the tokenizer has them.) stdlib/README.md, "Chat format", documents
 * the chat rendering for recipe authors.
 */
import type { ChatMessage, ChatTemplate } from '../check/chatTemplate.js';
import { UserError } from './errors.js';
import { EncodeError, type Tokenizer } from './tokenizer.js';

/** A run of a sequence's tokens, whether the loss is computed on them, and the text they came from (for messages). */
export interface Piece {
  readonly tokens: Int32Array;
  readonly trained: boolean;
  /** `prompt`, `completion`, `messages[2].content`, `template.user`, `eos`, … */
  readonly field: string;
}

/** What a model continues from, by dataset format. */
export type PromptInput =
  | { readonly format: 'text'; readonly text: string }
  | { readonly format: 'prompt_completion' | 'preference'; readonly prompt: string }
  | { readonly format: 'chat'; readonly messages: readonly ChatMessage[]; readonly template: ChatTemplate };

/** A string the tokenizer cannot encode; `field` names where it came from. */
export class PromptEncodeError extends UserError {
  constructor(
    readonly field: string,
    /** Why, with the character and its index (EncodeError's message). */
    readonly reason: string,
  ) {
    super(`"${field}": ${reason}`);
  }
}

/**
 * The tokens every sequence of the format starts with: bos for JSONL formats when the
 * tokenizer has one, nothing for text corpora. Sequences too long for their length are
 * cut after it, never in it.
 */
export function sequenceHead(tok: Tokenizer, format: PromptInput['format']): Int32Array {
  const bos = tok.special('bos');
  return format === 'text' || bos === null ? new Int32Array(0) : Int32Array.of(bos);
}

/** The pieces of a prompt after the head; none is trained. For chat: the messages, then the assistant prefix. */
export function promptBody(tok: Tokenizer, input: PromptInput): Piece[] {
  switch (input.format) {
    case 'text':
      return [piece(tok, input.text, false, 'text')];
    case 'prompt_completion':
    case 'preference':
      return [piece(tok, input.prompt, false, 'prompt')];
    case 'chat':
      return [...conversationPieces(tok, input.template, input.messages), piece(tok, input.template.assistant, false, 'template.assistant')];
  }
}

/** The token ids a model continues from: head + body. Training sequences for the same input start with exactly these. */
export function promptIds(tok: Tokenizer, input: PromptInput): Int32Array {
  return concat([sequenceHead(tok, input.format), ...promptBody(tok, input).map((p) => p.tokens)]);
}

/**
 * A completion (prompt_completion, preference) after its prompt: the text and eos,
 * both trained, so the model learns to stop.
 */
export function completionPieces(tok: Tokenizer, text: string, field: string): Piece[] {
  const eos = tok.special('eos');
  return [piece(tok, text, true, field), ...(eos === null ? [] : [{ tokens: Int32Array.of(eos), trained: true, field: 'eos' }])];
}

/**
 * A conversation, message by message: `prefix content end`, where an assistant's
 * content is followed by eos. Trained: assistant content and what closes it — its eos,
 * or, when the tokenizer has no eos, the template's `end` — so the model learns where
 * its turn ends. A message's pieces never depend on the messages after it, which makes
 * a prompt (promptBody) a prefix of every conversation that continues it.
 */
export function conversationPieces(tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[]): Piece[] {
  const eos = tok.special('eos');
  return messages.flatMap((m, k): Piece[] => {
    const reply = m.role === 'assistant';
    return [
      piece(tok, template[m.role], false, `template.${m.role}`),
      piece(tok, m.content, reply, `messages[${k}].content`),
      ...(reply && eos !== null ? [{ tokens: Int32Array.of(eos), trained: true, field: 'eos' }] : []),
      piece(tok, template.end, reply && eos === null, 'template.end'),
    ];
  });
}

/**
 * What ends a generated reply, mirroring what closes a trained one: the eos token when
 * the tokenizer has one; for chat without eos, the template's end text.
 */
export function replyStops(tok: Tokenizer, input: PromptInput): { readonly ids: readonly number[]; readonly strings: readonly string[] } {
  const eos = tok.special('eos');
  if (eos !== null) return { ids: [eos], strings: [] };
  return { ids: [], strings: input.format === 'chat' && input.template.end !== '' ? [input.template.end] : [] };
}

function piece(tok: Tokenizer, text: string, trained: boolean, field: string): Piece {
  try {
    return { tokens: tok.encode(text), trained, field };
  } catch (e) {
    if (e instanceof EncodeError) throw new PromptEncodeError(field, e.message);
    throw e;
  }
}

function concat(parts: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
