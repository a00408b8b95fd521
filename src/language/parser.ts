/**
 * The parser: text → `Recipe` AST plus syntax diagnostics. Never throws.
 *
 * Pipeline: `lexRecipe` (lexer.ts) → nesting guard (brackets deeper than
 * MAX_NESTING are cut out) → one token segment per top-level declaration
 * (segments.ts) → Chevrotain CST parser (recipeParser.ts; rule names = EBNF
 * productions; messages in parserMessages.ts) → follow-up errors dropped
 * (filterProblems.ts) → `AstBuilder` (astBuilder.ts), the one place CST
 * becomes AST (it also groups the flat operator rows by precedence).
 * This file is the driver that runs them in that order.
 *
 * Error recovery, in layers:
 * - Segments: a declaration keyword that starts a declaration (see
 *   `startsDeclaration`) ends the previous segment, so an error can never
 *   swallow the next declaration, and a missing `}` costs one diagnostic.
 * - Lists report a missing comma and carry on as if it were there; a missing
 *   closer is inserted when the next token plainly belongs to the enclosing
 *   construct (a setting `name =`, `let`, `}`, the next declaration).
 * - Item loops (stage items, block members, deploy settings) resume at the
 *   next item; everything else is Chevrotain's single-token insertion and
 *   deletion and its re-sync recovery.
 * - Follow-up errors are dropped (`filterProblems`): after an error, another
 *   in the same declaration is kept only once an item that starts a line has
 *   parsed cleanly for two tokens; an error right after text the lexer
 *   already reported (invalid characters, an unterminated string) is dropped.
 */
import type { CstNode, IRecognitionException, IToken } from 'chevrotain';
import type * as A from './ast.js';
import { AstBuilder } from './astBuilder.js';
import { DiagnosticBag, SourceFile } from './diagnostics.js';
import { filterProblems, type Problem } from './filterProblems.js';
import { isRealToken, lexRecipe, tokenEnd, UnterminatedString } from './lexer.js';
import { declarationHint, keywordHint, parserMessages as messages, readBlame } from './parserMessages.js';
import { recipeParser, type RecipeParser } from './recipeParser.js';
import { letEnds, limitNesting, segments } from './segments.js';

export { MAX_EXPRESSION_DEPTH } from './astBuilder.js';
export { MAX_NESTING } from './segments.js';

interface SegmentResult {
  readonly cst: CstNode;
  readonly problems: Problem[];
  /** Offsets where items starting a line began (see RecipeParser.noteItem), ascending. */
  readonly itemStarts: number[];
}

/** Parses one segment and turns Chevrotain's and the grammar actions' errors into positioned problems. */
function parseSegment(parser: RecipeParser, tokens: IToken[], follower: IToken | null, source: SourceFile): SegmentResult {
  messages.follower = follower;
  messages.tokens = tokens;
  parser.ptSegment = tokens;
  parser.input = tokens;
  parser.ptErrors = [];
  parser.ptItemStarts = [];
  const cst = parser.Recipe();
  const last = tokens[tokens.length - 1];
  const endOffset = last ? tokenEnd(last) : 0;

  const problems: Problem[] = [];
  const place = (token: IToken, previous: IToken | undefined, message: string, hint: string | null, misspeltDeclaration = false): void => {
    if (isRealToken(token)) {
      problems.push({ anchor: token.startOffset, offset: token.startOffset, span: source.span(token.startOffset, tokenEnd(token)), message, hint, misspeltDeclaration });
    } else {
      // Inserted tokens and the end of input have no position: pin to the end of the previous token.
      const at = isRealToken(previous) ? tokenEnd(previous) : endOffset;
      problems.push({ anchor: at, offset: at, span: source.span(at, at), message, hint });
    }
  };
  for (const e of parser.errors as (IRecognitionException & { previousToken?: IToken })[]) {
    const blamed = readBlame(e.message);
    if (blamed !== null) {
      const { start, end, message } = blamed;
      const anchor = isRealToken(e.token) ? e.token.startOffset : start;
      problems.push({ anchor, offset: start, span: source.span(start, end), message, hint: keywordHint(message, undefined, undefined) });
      continue;
    }
    const message = e.message;
    const topLevel = message.includes(' at top level: ');
    const hint = topLevel && isRealToken(e.token) ? declarationHint(e.token) : keywordHint(message, e.token, e.previousToken);
    place(e.token, e.previousToken, message, hint, topLevel && hint !== null);
  }
  for (const e of parser.ptErrors) place(e.token, e.previous, e.message, keywordHint(e.message, e.token, e.previous));
  problems.sort((a, b) => a.offset - b.offset);
  return { cst, problems, itemStarts: [...new Set(parser.ptItemStarts)].sort((a, b) => a - b) };
}

/** Lexes and parses; calls `onSegment` with each declaration's CST. Shared by parseRecipe and the grammar tests. */
function run(text: string, source: SourceFile, bag: DiagnosticBag, onSegment: (cst: CstNode, tokenCount: number) => void): A.Comment[] {
  const parser = recipeParser();
  const lexed = lexRecipe(text, source, bag);
  const quiet = [...lexed.invalidOffsets];
  for (const t of lexed.tokens) if (t.tokenType === UnterminatedString) quiet.push(tokenEnd(t));
  const tokens = limitNesting(lexed.tokens, source, bag, quiet);
  quiet.sort((a, b) => a - b);
  parser.ptText = text;
  messages.text = text;
  parser.ptLetEnds = letEnds(tokens, text);
  parser.ptInBody = false;
  for (const [start, end] of segments(tokens, text)) {
    const slice = tokens.slice(start, end);
    const { cst, problems, itemStarts } = parseSegment(parser, slice, tokens[end] ?? null, source);
    for (const p of filterProblems(problems, cst, itemStarts, tokens, quiet)) bag.report('syntax-error', p.message, p.span, { hint: p.hint });
    onSegment(cst, end - start);
  }
  parser.ptText = '';
  messages.text = '';
  messages.tokens = [];
  parser.ptLetEnds = new Map();
  parser.ptSegment = [];
  return lexed.comments;
}

/**
 * A SourceFile whose line lookups start from the line of the previous one:
 * the builder asks in (nearly) source order, so most lookups cost O(1)
 * instead of a binary search, and spans are made without intermediate
 * position objects. Same results as SourceFile.
 */
class SequentialSource extends SourceFile {
  private readonly starts: number[] = [0];
  private line = 0;

  constructor(path: string, text: string) {
    super(path, text);
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.starts.push(i + 1);
  }

  /** 0-based index of the line holding `offset` (already clamped). */
  private lineIndex(offset: number): number {
    const starts = this.starts;
    let line = this.line;
    // Walk a few lines from the last answer; fall back to a binary search for long jumps.
    for (let steps = 0; steps < 8; steps++) {
      if (offset < starts[line]!) line--;
      else if (line + 1 < starts.length && offset >= starts[line + 1]!) line++;
      else return (this.line = line);
    }
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return (this.line = lo);
  }

  override position(offset: number): { line: number; column: number } {
    const clamped = Math.max(0, Math.min(offset, this.text.length));
    const line = this.lineIndex(clamped);
    return { line: line + 1, column: clamped - this.starts[line]! + 1 };
  }

  override span(start: number, end: number): A.Span {
    const max = this.text.length;
    const s = Math.max(0, Math.min(start, max));
    const e = Math.max(0, Math.min(end, max));
    const sl = this.lineIndex(s);
    const sc = s - this.starts[sl]! + 1;
    const el = this.lineIndex(e);
    return { file: this.path, start, end, line: sl + 1, column: sc, endLine: el + 1, endColumn: e - this.starts[el]! + 1 };
  }
}

/**
 * Parses a recipe. Syntax errors go to `bag` (codes `syntax-error`,
 * `unterminated-string`, `invalid-character`, `invalid-escape`); the tree is
 * built from whatever could be recovered, with `ErrorExpr` where an
 * expression is missing and empty names where a name is. Never throws.
 */
export function parseRecipe(text: string, file: string, bag: DiagnosticBag): A.Recipe {
  const source = new SequentialSource(file, text);
  const builder = new AstBuilder(source, bag);
  const declarations: A.Declaration[] = [];
  try {
    const comments = run(text, source, bag, (cst, count) => declarations.push(...builder.recipe(cst, count)));
    return { kind: 'Recipe', declarations, comments, loc: source.span(0, text.length) };
  } catch (e) {
    if (e instanceof RangeError) {
      bag.report('syntax-error', 'the recipe is nested too deeply to parse', source.span(0, 0));
    } else {
      bag.report('internal-error', `internal error in the parser: ${(e as Error)?.message ?? String(e)}`, source.span(0, 0), {
        hint: 'this is a bug in pt-recipe; please report it with this recipe',
      });
    }
    return { kind: 'Recipe', declarations, comments: [], loc: source.span(0, text.length) };
  }
}

/** The names of all parser rules (= the EBNF productions the parser implements). */
export function parserRuleNames(): string[] {
  return Object.keys(recipeParser().getGAstProductions());
}

/** The names of the parser rules used while parsing `text`: for checking that examples cover the grammar. */
export function exercisedRules(text: string): Set<string> {
  const names = new Set<string>();
  const walk = (node: CstNode): void => {
    names.add(node.name);
    for (const list of Object.values(node.children)) for (const el of list) if (!('tokenType' in el)) walk(el);
  };
  run(text, new SourceFile('<rules>', text), new DiagnosticBag(), walk);
  return names;
}
