/**
 * The parser's words: what was expected and what was found, said once and
 * short (Chevrotain's own texts are long), and "did you mean" hints for
 * misspelt keywords. The grammar (recipeParser.ts) hands this provider to
 * Chevrotain; the driver (parser.ts) reads messages back with `readBlame`.
 */
import { EOF, tokenMatcher, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';
import { closestName } from './diagnostics.js';
import { DECLARATION_KEYWORDS, describeText, EvalWord, Equals, Identifier, KEYWORDS, Kw, Name, RBrace, StringLiteral } from './lexer.js';

/** The end of every "at top level" message. */
const TOP_LEVEL_EXPECTED = `expected a declaration (${DECLARATION_KEYWORDS.join(', ')})`;

/** Describes the token an error was found at; the end of a segment is the next declaration's keyword. */
export function describeToken(t: IToken | undefined, follower: IToken | null): string {
  if (t === undefined || t.tokenType === EOF) return follower ? `'${describeText(follower.image)}'` : 'end of file';
  if (tokenMatcher(t, StringLiteral)) return `string ${describeText(t.image)}`;
  if (KEYWORD_TYPES.has(t.tokenType)) return `keyword '${t.image}'`;
  return `'${describeText(t.image)}'`;
}

/** An expected token type in words ("a name", "a string", or its label). */
export function describeExpected(t: TokenType): string {
  if (t === Identifier || t === Name) return 'a name';
  if (t === StringLiteral) return 'a string';
  return typeof t.LABEL === 'string' ? t.LABEL : t.name;
}

const KEYWORD_TYPES: ReadonlySet<TokenType> = new Set(Object.values(Kw));

const EXPRESSION_RULES = new Set(['Expression', 'Operand', 'Postfix', 'Primary', 'Argument']);

/** What a `}` closes, for "expected X or '}'" when junk sits where the next item should be. */
const ITEM_LISTS: Readonly<Record<string, string>> = {
  StageDecl: "a setting (name = value), 'let', 'eval every' or '}'",
  BlockDecl: "a block member (param, forward, name = value) or '}'",
  DeployDecl: "a setting (name = value) or '}'",
};

/** Chevrotain's default texts are long; these say what was expected and what was found, once. */
export class ParserMessages implements IParserErrorMessageProvider {
  /** The token after the current segment: what "end of input" really is from the user's point of view. */
  follower: IToken | null = null;
  /** The tokens of the current segment, and the text they come from. */
  tokens: readonly IToken[] = [];
  text = '';

  private lineBreakBetween(a: IToken, b: IToken): boolean {
    if (!Number.isFinite(a.startOffset) || !Number.isFinite(b.startOffset)) return false;
    const i = this.text.indexOf('\n', a.startOffset + a.image.length);
    return i !== -1 && i < b.startOffset;
  }

  /** The index of the first token of the segment after `t`. */
  private indexAfter(t: IToken): number {
    let lo = 0;
    let hi = this.tokens.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.tokens[mid]!.startOffset <= t.startOffset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private after(t: IToken): IToken | undefined {
    return this.tokens[this.indexAfter(t)];
  }

  /** Whether `t` is the first token on its line (LA(0) cannot tell: recovery may have moved past it). */
  private startsLine(t: IToken): boolean {
    const prev = this.tokens[this.indexAfter(t) - 2];
    return prev === undefined || this.lineBreakBetween(prev, t);
  }

  buildMismatchTokenMessage(o: { expected: TokenType; actual: IToken; previous: IToken; ruleName: string }): string {
    const found = describeToken(o.actual, this.follower);
    if (o.expected === EOF) return `unexpected ${found} at top level: ${TOP_LEVEL_EXPECTED}`;
    const items = ITEM_LISTS[o.ruleName];
    if (o.expected === RBrace && items !== undefined && o.actual.tokenType !== EOF) {
      const next = this.after(o.actual);
      if (o.ruleName === 'StageDecl' && tokenMatcher(o.actual, Name) && next && next.tokenType !== Equals && this.startsLine(o.actual)) {
        // `batch 32`: a setting missing its '='; blame the token where '=' should be.
        const what = o.actual.tokenType === EvalWord ? "'every' or '='" : "'='";
        return blame(next, `expected ${what} after '${o.actual.image}' but found ${describeToken(next, this.follower)}`);
      }
      return `expected ${items} but found ${found}`;
    }
    return `expected ${describeExpected(o.expected)} but found ${found}`;
  }

  buildNotAllInputParsedMessage(o: { firstRedundant: IToken; ruleName: string }): string {
    return `unexpected ${describeToken(o.firstRedundant, this.follower)} at top level: ${TOP_LEVEL_EXPECTED}`;
  }

  buildNoViableAltMessage(o: { expectedPathsPerAlt: TokenType[][][]; actual: IToken[]; previous: IToken; ruleName: string }): string {
    const found = describeToken(o.actual[0], this.follower);
    const what = EXPRESSION_RULES.has(o.ruleName) ? 'an expression' : RULE_WANTS[o.ruleName];
    if (what !== undefined) return `expected ${what} but found ${found}`;
    if (o.ruleName === 'Declaration' || o.ruleName === 'Recipe') return `unexpected ${found} at top level: ${TOP_LEVEL_EXPECTED}`;
    const firsts = new Set<string>();
    for (const alt of o.expectedPathsPerAlt) for (const path of alt) if (path[0]) firsts.add(describeExpected(path[0]));
    return `expected ${[...firsts].join(' or ')} but found ${found}`;
  }

  buildEarlyExitMessage(o: { expectedIterationPaths: TokenType[][]; actual: IToken[]; previous: IToken; ruleName: string }): string {
    const firsts = new Set(o.expectedIterationPaths.map((p) => (p[0] ? describeExpected(p[0]) : '')).filter((s) => s));
    return `expected ${[...firsts].join(' or ')} but found ${describeToken(o.actual[0], this.follower)}`;
  }
}

/**
 * Marks a message as being about `t` rather than the token Chevrotain
 * reports; `readBlame` reads the mark back. Only real tokens are marked.
 */
function blame(t: IToken, message: string): string {
  if (t.tokenType === EOF || !Number.isFinite(t.startOffset)) return message;
  return `${BLAME}${t.startOffset}:${t.startOffset + t.image.length}${BLAME}${message}`;
}
const BLAME = '\u0000';

/**
 * Reads back a message marked by `blame`: the span it is about and the
 * message without the mark; null for an unmarked message.
 */
export function readBlame(message: string): { start: number; end: number; message: string } | null {
  if (!message.startsWith(BLAME)) return null;
  const close = message.indexOf(BLAME, 1);
  const [start, end] = message.slice(1, close).split(':').map(Number) as [number, number];
  return { start, end, message: message.slice(close + 1) };
}

/** What each choice rule was looking for, in words. */
const RULE_WANTS: Readonly<Record<string, string>> = {
  Type: 'a type such as f32[B, T] or (T1, T2)',
  Dim: "a dimension or '...'",
  Subscript: "an index, a slice or '...'",
  Pattern: "a name or '('",
  Body: "'=' or '{'",
  BlockMember: 'a block member (param, forward or name = value)',
  StageItem: "a setting (name = value), 'let' or 'eval every'",
  ModulePath: 'a module path such as std.nn or "./file.pt-recipe"',
};

/** The one message provider, shared by the parser and its grammar actions; the driver sets its per-segment fields. */
export const parserMessages = new ParserMessages();

/** Contextual words and keywords long enough that a near miss (`afer`, `evry`) is worth a hint. */
const HINT_WORDS: readonly string[] = [...KEYWORDS, 'eval'].filter((w) => w.length >= 4);

/** "did you mean 'after'?" when the offending token, or the one before it, is a misspelt keyword (`afer`, `parm w`). */
export function keywordHint(message: string, found: IToken | undefined, previous: IToken | undefined): string | null {
  const m = / but found '([A-Za-z_][A-Za-z0-9_]*)'$/.exec(message);
  const words = [m?.[1], found?.tokenType === Identifier ? found.image : undefined, previous?.tokenType === Identifier ? previous.image : undefined];
  for (const word of words) {
    if (!word || word.length < 4) continue;
    const best = nearMiss(word, HINT_WORDS);
    if (best && best !== word) return `did you mean '${best}'?`;
  }
  return null;
}

/** "did you mean 'model'?" for a name at top level that is a misspelt declaration keyword (`modle`). */
export function declarationHint(t: IToken): string | null {
  if (t.tokenType !== Identifier) return null;
  const best = nearMiss(t.image, DECLARATION_KEYWORDS);
  return best ? `did you mean '${best}'?` : null;
}

/** The candidate `word` is a likely misspelling of: close by edit distance, or two neighbouring letters swapped (`modle`). */
function nearMiss(word: string, candidates: readonly string[]): string | null {
  const lower = word.toLowerCase();
  for (const c of candidates) {
    if (c.length !== lower.length || c === lower) continue;
    for (let i = 0; i + 1 < c.length; i++) {
      if (lower === c.slice(0, i) + c[i + 1] + c[i] + c.slice(i + 2)) return c;
    }
  }
  return closestName(word, candidates);
}
