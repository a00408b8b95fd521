/**
 * Token passes before parsing, which make error recovery local: the token
 * stream is cut into one segment per top-level declaration (so an error never
 * swallows the next declaration), brackets nested too deeply are cut out, and
 * each `let` learns where its value must end inside a Body.
 */
import { tokenMatcher, type IToken, type TokenType } from 'chevrotain';
import type { DiagnosticBag, SourceFile } from './diagnostics.js';
import {
  Arrow,
  Colon,
  DECLARATION_KEYWORDS,
  Dot,
  Equals,
  EvalWord,
  Float,
  Identifier,
  Integer,
  Kw,
  LBrace,
  LBracket,
  LParen,
  Minus,
  RBrace,
  RBracket,
  RParen,
  StringLiteral,
  StringToken,
  tokenEnd,
  UnterminatedString,
} from './lexer.js';
import { EXPRESSION_START } from './recipeParser.js';

/** Brackets nested deeper than this are cut out (and reported): recursive descent needs the stack. */
export const MAX_NESTING = 64;

const DECLARATION_TYPES: ReadonlySet<TokenType> = new Set(DECLARATION_KEYWORDS.map((w) => Kw[w]!));
const OPENERS: ReadonlySet<TokenType> = new Set([LParen, LBracket, LBrace]);
const CLOSERS: ReadonlySet<TokenType> = new Set([RParen, RBracket, RBrace]);

/**
 * Whether the declaration keyword at `i` starts a declaration. Outside
 * brackets it does unless it is a member (`.model`), a type (`x: model`,
 * `-> model`) or a label (`model:`); in mid-line only if a declaration's
 * first tokens follow (`model m =`). Inside brackets, where it may also be a
 * setting name (`model = policy`) or a misplaced label (`f(tokenizer tok)`),
 * only when it begins a line and a name follows (`model m = ...`): so a
 * missing `}` cannot hide the next declaration. Right after another
 * declaration keyword (`model block = ...`) it is a name unless it begins a line.
 */
function startsDeclaration(tokens: readonly IToken[], i: number, depth: number, text: string): boolean {
  const t = tokens[i]!;
  if (!DECLARATION_TYPES.has(t.tokenType)) return false;
  const prev = i > 0 ? tokens[i - 1]! : null;
  const prevType = prev?.tokenType;
  if (prevType === Dot || prevType === Colon || prevType === Arrow) return false;
  const next = tokens[i + 1];
  const nextType = next?.tokenType;
  if (nextType === Colon) return false;
  const lineStart = prev === null || text.lastIndexOf('\n', t.startOffset) >= tokenEnd(prev);
  if (prevType !== undefined && DECLARATION_TYPES.has(prevType) && !lineStart) return false;
  if (depth === 0) return lineStart || looksLikeDeclaration(tokens, i);
  if (!lineStart || next === undefined) return false;
  return nextType === Identifier || nextType === EvalWord || (t.tokenType === Kw['import'] && tokenMatcher(next, StringLiteral));
}

/** `model m =`, `block B(`, `stage s:`, `import std`, `deploy m`: the shape a declaration starts with. */
function looksLikeDeclaration(tokens: readonly IToken[], i: number): boolean {
  const kw = tokens[i]!.tokenType;
  const next = tokens[i + 1];
  if (next === undefined) return false;
  if (kw === Kw['import']) return next.tokenType === Identifier || tokenMatcher(next, StringLiteral);
  if (kw === Kw['deploy']) return EXPRESSION_START.has(next.tokenType);
  if (next.tokenType !== Identifier && next.tokenType !== EvalWord) return false;
  const after = tokens[i + 2]?.tokenType;
  if (kw === Kw['block'] || kw === Kw['fn']) return after === LParen;
  if (kw === Kw['stage']) return after === Colon;
  return after === Equals;
}

/** Token index ranges [start, end), one per top-level declaration (the first may hold junk before any declaration). */
export function segments(tokens: readonly IToken[], text: string): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!.tokenType;
    if (OPENERS.has(t)) depth++;
    else if (CLOSERS.has(t)) depth = Math.max(0, depth - 1);
    else if (i > 0 && startsDeclaration(tokens, i, depth, text)) {
      out.push([start, i]);
      start = i;
      depth = 0;
    }
  }
  if (tokens.length > 0) out.push([start, tokens.length]);
  return out;
}

/**
 * Cuts out brackets nested deeper than MAX_NESTING (each cut reported once),
 * so that the recursive parser and every later phase stay within the stack.
 */
export function limitNesting(tokens: IToken[], source: SourceFile, bag: DiagnosticBag, quiet: number[]): IToken[] {
  let depth = 0;
  let kept: IToken[] | null = null;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (OPENERS.has(t.tokenType)) {
      if (depth >= MAX_NESTING) {
        kept ??= tokens.slice(0, i);
        let d = 0;
        let j = i;
        for (; j < tokens.length; j++) {
          const tt = tokens[j]!.tokenType;
          if (OPENERS.has(tt)) d++;
          else if (CLOSERS.has(tt) && --d === 0) break;
        }
        bag.report('syntax-error', `brackets nested too deeply (more than ${MAX_NESTING} levels)`, source.span(t.startOffset, tokenEnd(t)));
        quiet.push(t.startOffset);
        i = j;
        continue;
      }
      depth++;
    } else if (CLOSERS.has(t.tokenType)) {
      depth = Math.max(0, depth - 1);
    }
    kept?.push(t);
  }
  return kept ?? tokens;
}

/** Whether text[from, to) holds a line break (a comment in between ends before its line break). */
function hasLineBreak(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === 10) return true;
  return false;
}

const LINE_START_BREAKERS: ReadonlySet<TokenType> = new Set([Minus, LParen, LBracket]);
/** Tokens that can end an expression: after anything else (an operator, '=', ',') the value plainly goes on. */
const EXPRESSION_END: ReadonlySet<TokenType> = new Set([
  Identifier, EvalWord, Integer, Float, StringToken, UnterminatedString, Kw['true']!, Kw['false']!, Kw['where']!, RParen, RBracket,
]);

/**
 * For each `let`, the first '-', '(' or '[' that begins a line at the let's
 * bracket depth after its value has begun (not the value's first token), when
 * the line before ends with a token that can end an expression (a name, a
 * literal, ')' or ']'), before the next `let` at that depth or the end of the
 * enclosing bracket: where the let's value must end if it is in a Body.
 */
export function letEnds(tokens: readonly IToken[], text: string): Map<IToken, IToken> {
  const out = new Map<IToken, IToken>();
  // Per bracket depth: the open let, and how far it got (0: before '=', 1: just after '=', 2: in its value).
  const open: (IToken | undefined)[] = [];
  const state: number[] = [];
  let depth = 0;
  let prevEnd = 0;
  let prevType: TokenType | undefined;
  for (const t of tokens) {
    const type = t.tokenType;
    const let_ = open[depth];
    if (type === Kw['let']) {
      open[depth] = t;
      state[depth] = 0;
    } else if (let_ !== undefined) {
      if (state[depth] === 0) {
        if (type === Equals) state[depth] = 1;
      } else if (state[depth] === 1) {
        state[depth] = 2;
      } else if (LINE_START_BREAKERS.has(type) && EXPRESSION_END.has(prevType!) && hasLineBreak(text, prevEnd, t.startOffset)) {
        out.set(let_, t);
        open[depth] = undefined;
      }
    }
    if (OPENERS.has(type)) {
      depth++;
      open[depth] = undefined;
    } else if (CLOSERS.has(type)) {
      open[depth] = undefined;
      depth = Math.max(0, depth - 1);
    }
    prevEnd = tokenEnd(t);
    prevType = type;
  }
  return out;
}
