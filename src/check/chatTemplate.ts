/**
 * Chat templates: the text around each message of a `jsonl(..., format: chat)` row.
 * A recipe declares one with `template: chat_template(user: "User: ", ...)`; the
 * checker checks its strings against the tokenizer, lowering carries it in the
 * dataset spec, and runtime/prompt.ts renders it, for training and sampling alike.
 * The rendering rules are documented in stdlib/README.md, "Chat format".
 */

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

/** One message of a conversation. */
export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
}

/** A message renders as `<role prefix> content <end>`; an assistant message has eos before its end. */
export interface ChatTemplate {
  readonly system: string;
  readonly user: string;
  readonly assistant: string;
  /** Closes every message. */
  readonly end: string;
}

/** The parameters of `chat_template(...)`, in order. */
export const CHAT_TEMPLATE_FIELDS = ['system', 'user', 'assistant', 'end'] as const satisfies readonly (keyof ChatTemplate)[];

/** The template of a chat dataset that declares none (and the defaults of `chat_template(...)`). */
export const DEFAULT_CHAT_TEMPLATE: ChatTemplate = { system: 'System: ', user: 'User: ', assistant: 'Assistant: ', end: '\n' };
