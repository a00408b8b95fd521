/**
 * The lexer: Chevrotain token types for pt-recipe and `lexRecipe`, which turns
 * text into tokens plus comments and reports lexical errors (invalid
 * characters, unterminated strings, invalid escapes) into a DiagnosticBag.
 *
 * The lexical productions are those of grammar/pt-recipe.ebnf:
 *
 *     Identifier = Letter , { Letter | Digit | "_" } ;
 *     Integer    = Digit , { Digit | "_" } ;
 *     Float      = Digit , { Digit } , ( "." , Digit , { Digit } , [ Exponent ] | Exponent ) ;
 *     Exponent   = ( "e" | "E" ) , [ "+" | "-" ] , Digit , { Digit } ;
 *     String     = '"' , { StringChar | Escape } , '"' ;
 *     Comment    = "#" , { AnyCharButNewline } ;
 */
import { createToken, EOF, Lexer, type IToken, type TokenType } from 'chevrotain';
import type { Comment } from './ast.js';
import type { DiagnosticBag, SourceFile } from './diagnostics.js';

// ---------------------------------------------------------------- categories

/**
 * Abstract category `Name = Identifier | Keyword`: where the grammar says Name
 * (argument labels, members, setting names) any keyword is accepted too.
 */
export const Name = createToken({ name: 'Name', pattern: Lexer.NA });

/** Category of the two string tokens, so the parser accepts an unterminated string as a string (already reported). */
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: Lexer.NA, label: 'a string' });

/**
 * Operator categories: every binary operator is a BinaryOp and the prefix
 * operators are PrefixOps ('-' is both), so the parser sees one CST key per
 * kind and keeps the operators in source order.
 */
export const BinaryOp = createToken({ name: 'BinaryOp', pattern: Lexer.NA, label: 'an operator' });
/** See BinaryOp. */
export const PrefixOp = createToken({ name: 'PrefixOp', pattern: Lexer.NA, label: "'!' or '-'" });

// ---------------------------------------------------------------- trivia

/** Spaces, tabs, line breaks (and a byte order mark): skipped. */
export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\v\uFEFF]+/, group: Lexer.SKIPPED });
/** Comments go to their own group: the parser never sees them, the AST keeps them (Recipe.comments). */
export const CommentToken = createToken({ name: 'Comment', pattern: /#[^\n\r]*/, group: 'comments' });

// ---------------------------------------------------------------- names

/** `Identifier = Letter , { Letter | Digit | "_" }` (ASCII letters and `_`). */
export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/, categories: [Name], label: 'a name' });

/**
 * `eval` is a contextual keyword: it starts `eval every N on data` inside a
 * stage but is an ordinary identifier everywhere else (the stage kind `eval`).
 * Being in the Identifier category, it matches wherever an Identifier does.
 */
export const EvalWord = createToken({
  name: 'EvalWord',
  pattern: /eval/,
  longer_alt: Identifier,
  categories: [Identifier, Name],
  label: "'eval'",
});

/** Reserved words, in the order of the EBNF `Keyword` production. */
export const KEYWORDS: readonly string[] = [
  'import', 'as', 'tokenizer', 'model', 'dataset', 'block', 'fn',
  'stage', 'deploy', 'param', 'forward', 'let', 'where', 'if',
  'on', 'after', 'to', 'every', 'true', 'false',
];

/** The keywords that start a top-level declaration; error recovery resynchronises at them. */
export const DECLARATION_KEYWORDS: readonly string[] = ['import', 'tokenizer', 'model', 'dataset', 'block', 'fn', 'stage', 'deploy'];

function keyword(word: string): TokenType {
  const name = `Kw${word[0]!.toUpperCase()}${word.slice(1)}`;
  return createToken({ name, pattern: new RegExp(word), longer_alt: Identifier, categories: [Name], label: `'${word}'` });
}

/** Keyword token types by spelling. */
export const Kw: Readonly<Record<string, TokenType>> = Object.fromEntries(KEYWORDS.map((w) => [w, keyword(w)]));

// ---------------------------------------------------------------- literals

/** Float before Integer: Chevrotain takes the first pattern that matches, not the longest. */
export const Float = createToken({ name: 'Float', pattern: /\d+(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+)/, label: 'a number' });
/** `Integer = Digit , { Digit | "_" }`: `1_000` is 1000. */
export const Integer = createToken({ name: 'Integer', pattern: /\d[\d_]*/, label: 'a number' });

/** Any backslash pair is lexed; `decodeString` decides which escapes are valid, so a bad one costs one diagnostic, not a broken token. */
export const StringToken = createToken({ name: 'String', pattern: /"(?:[^"\\\n\r]|\\[^\n\r])*"/, categories: [StringLiteral], label: 'a string' });
/** A string that reaches the end of its line: reported once, then parsed as if it were closed. */
export const UnterminatedString = createToken({
  name: 'UnterminatedString',
  pattern: /"(?:[^"\\\n\r]|\\[^\n\r])*\\?/,
  categories: [StringLiteral],
  label: 'a string',
});

// ---------------------------------------------------------------- punctuation and operators

function punct(name: string, text: string, categories: TokenType[] = []): TokenType {
  const pattern = new RegExp(text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
  return createToken({ name, pattern, categories, label: `'${text}'` });
}

/**
 * Operators and punctuation, one token type each. Longer operators come
 * before their prefixes (`->` before `-`, `...` before `.`).
 */
export const Arrow = punct('Arrow', '->');
export const Ellipsis = punct('Ellipsis', '...');
export const StarStar = punct('StarStar', '**', [BinaryOp]);
export const EqEq = punct('EqEq', '==', [BinaryOp]);
export const NotEq = punct('NotEq', '!=', [BinaryOp]);
export const LessEq = punct('LessEq', '<=', [BinaryOp]);
export const GreaterEq = punct('GreaterEq', '>=', [BinaryOp]);
export const Less = punct('Less', '<', [BinaryOp]);
export const Greater = punct('Greater', '>', [BinaryOp]);
export const AndAnd = punct('AndAnd', '&&', [BinaryOp]);
export const OrOr = punct('OrOr', '||', [BinaryOp]);
export const Plus = punct('Plus', '+', [BinaryOp]);
export const Minus = punct('Minus', '-', [BinaryOp, PrefixOp]);
export const Star = punct('Star', '*', [BinaryOp]);
export const Slash = punct('Slash', '/', [BinaryOp]);
export const Percent = punct('Percent', '%', [BinaryOp]);
export const At = punct('At', '@', [BinaryOp]);
export const Bang = punct('Bang', '!', [PrefixOp]);
export const Equals = punct('Equals', '=');
export const LParen = punct('LParen', '(');
export const RParen = punct('RParen', ')');
export const LBracket = punct('LBracket', '[');
export const RBracket = punct('RBracket', ']');
export const LBrace = punct('LBrace', '{');
export const RBrace = punct('RBrace', '}');
export const Comma = punct('Comma', ',');
export const Colon = punct('Colon', ':');
export const Dot = punct('Dot', '.');

/** Every token type, in lexing priority order (categories included, as Chevrotain requires). */
export const allTokens: readonly TokenType[] = [
  WhiteSpace,
  CommentToken,
  Name,
  StringLiteral,
  BinaryOp,
  PrefixOp,
  StringToken,
  UnterminatedString,
  Float,
  Integer,
  EvalWord,
  ...KEYWORDS.map((w) => Kw[w]!),
  Identifier,
  Arrow,
  Ellipsis,
  StarStar,
  EqEq,
  NotEq,
  LessEq,
  GreaterEq,
  Less,
  Greater,
  AndAnd,
  OrOr,
  Plus,
  Minus,
  Star,
  Slash,
  Percent,
  At,
  Bang,
  Equals,
  LParen,
  RParen,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  Comma,
  Colon,
  Dot,
];

/** Built once: Chevrotain analyses the patterns at construction. */
const recipeLexer = new Lexer(allTokens as TokenType[], {
  positionTracking: 'onlyOffset',
  ensureOptimizations: true,
});

/** The tokens of one text, without whitespace and comments. */
export interface LexResult {
  readonly tokens: IToken[];
  readonly comments: Comment[];
  /** Start offsets of invalid-character runs, ascending: the parser drops syntax errors these already explain. */
  readonly invalidOffsets: number[];
}

/** Shows a piece of source in a message: control and non-ASCII characters escaped, long text cut. */
export function describeText(text: string, max = 24): string {
  const cut = [...text];
  const shown = cut.length > max ? `${cut.slice(0, max).join('')}…` : text;
  return shown.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff\ud800-\udfff]/g, (c) => `\\u{${c.charCodeAt(0).toString(16).toUpperCase()}}`);
}

/** Whether `t` is a token from the text: not the end of input, not one inserted by error recovery (those have NaN offsets). */
export function isRealToken(t: IToken | undefined): t is IToken {
  return t !== undefined && t.tokenType !== EOF && !t.isInsertedInRecovery && Number.isFinite(t.startOffset);
}

/** The offset just past `t`. */
export function tokenEnd(t: IToken): number {
  return t.startOffset + t.image.length;
}

/**
 * Lexes `text`, reporting `invalid-character` (one per run of characters no
 * token starts with), `unterminated-string` and `invalid-escape`. The decoded
 * value of each string token is left in its `payload`.
 */
export function lexRecipe(text: string, source: SourceFile, bag: DiagnosticBag): LexResult {
  const result = recipeLexer.tokenize(text);
  const invalidOffsets: number[] = [];
  for (const e of result.errors) {
    const run = text.slice(e.offset, e.offset + e.length);
    const what = [...run].length === 1 ? 'invalid character' : 'invalid characters';
    bag.report('invalid-character', `${what} '${describeText(run)}'`, source.span(e.offset, e.offset + e.length));
    invalidOffsets.push(e.offset);
  }
  for (const t of result.tokens) {
    // 'onlyOffset' tracking leaves endOffset unset; the parser's node locations need it.
    t.endOffset = t.startOffset + t.image.length - 1;
    if (t.tokenType === UnterminatedString) {
      bag.report('unterminated-string', 'unterminated string: missing the closing \'"\' on this line', source.span(t.startOffset, t.startOffset + t.image.length), {
        hint: 'strings cannot span lines; use \\n for a line break',
      });
      t.payload = decodeString(t.image, t.startOffset, false, source, bag);
    } else if (t.tokenType === StringToken) {
      t.payload = decodeString(t.image, t.startOffset, true, source, bag);
    }
  }
  const comments: Comment[] = (result.groups['comments'] ?? []).map((c) => ({
    text: c.image.slice(1),
    loc: source.span(c.startOffset, c.startOffset + c.image.length),
  }));
  return { tokens: result.tokens, comments, invalidOffsets };
}

/**
 * The value of a string token: escapes `\" \\ \n \t \u{XXXX}` (1 to 6 hex
 * digits, at most 10FFFF). Any other escape is an `invalid-escape` and is kept
 * as written.
 */
export function decodeString(image: string, offset: number, closed: boolean, source: SourceFile, bag: DiagnosticBag): string {
  const end = closed ? image.length - 1 : image.length;
  let out = '';
  let i = 1;
  while (i < end) {
    const ch = image[i]!;
    if (ch !== '\\') {
      // Copy the run up to the next backslash in one step: strings are mostly plain.
      const next = image.indexOf('\\', i);
      const stop = next === -1 || next > end ? end : next;
      out += image.slice(i, stop);
      i = stop;
      continue;
    }
    const esc = image[i + 1];
    if (esc === '"' || esc === '\\') {
      out += esc;
      i += 2;
    } else if (esc === 'n') {
      out += '\n';
      i += 2;
    } else if (esc === 't') {
      out += '\t';
      i += 2;
    } else if (esc === 'u') {
      const m = /^\\u\{([0-9A-Fa-f]{1,6})\}/.exec(image.slice(i, Math.min(end, i + 11)));
      const code = m ? parseInt(m[1]!, 16) : NaN;
      if (m && code <= 0x10ffff) {
        out += String.fromCodePoint(code);
        i += m[0].length;
      } else {
        const len = m ? m[0].length : 2;
        bag.report(
          'invalid-escape',
          m ? `invalid escape '${describeText(m[0])}': code point above 10FFFF` : `invalid escape '\\u': expected \\u{XXXX} with 1 to 6 hex digits`,
          source.span(offset + i, offset + i + len),
        );
        out += image.slice(i, i + len);
        i += len;
      }
    } else {
      // `esc` is undefined only for a trailing backslash of an unterminated string (already reported).
      if (esc !== undefined) {
        bag.report('invalid-escape', `invalid escape '\\${describeText(esc)}'`, source.span(offset + i, offset + i + 1 + esc.length), {
          hint: 'valid escapes are \\" \\\\ \\n \\t and \\u{XXXX}',
        });
        out += esc;
      }
      i += 1 + (esc?.length ?? 0);
    }
  }
  return out;
}
