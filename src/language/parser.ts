/**
 * The parser: text → `Recipe` AST plus syntax diagnostics. Never throws.
 *
 * Pipeline: `lexRecipe` → nesting guard (brackets deeper than MAX_NESTING are
 * cut out) → one token segment per top-level declaration → Chevrotain CST
 * parser (rule names = EBNF productions) → `AstBuilder`, the one place CST
 * becomes AST (it also groups the flat operator rows by precedence).
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
import {
  createToken,
  CstParser,
  EOF,
  Lexer,
  tokenMatcher,
  type CstElement,
  type CstNode,
  type IParserErrorMessageProvider,
  type IRecognitionException,
  type IToken,
  type TokenType,
} from 'chevrotain';
import type * as A from './ast.js';
import { BINARY_PRECEDENCE, PREC_AND, PREC_COMPARE, PREC_NEG, PREC_NOT, PREC_OR, PREC_POW } from './precedence.js';
import { closestName, DiagnosticBag, joinSpans, SourceFile } from './diagnostics.js';
import {
  Arrow,
  Bang,
  BinaryOp,
  Colon,
  Comma,
  DECLARATION_KEYWORDS,
  describeText,
  Dot,
  Ellipsis,
  Equals,
  EvalWord,
  Float,
  Identifier,
  Integer,
  KEYWORDS,
  Kw,
  LBrace,
  LBracket,
  lexRecipe,
  LParen,
  Minus,
  Name,
  RBrace,
  RBracket,
  PrefixOp,
  RParen,
  StringLiteral,
  StringToken,
  UnterminatedString,
  allTokens,
} from './lexer.js';

/** Brackets nested deeper than this are cut out (and reported): recursive descent needs the stack. */
export const MAX_NESTING = 64;
/** Expression trees deeper than this (long operator chains) become ErrorExpr, so later phases may recurse freely. */
export const MAX_EXPRESSION_DEPTH = 256;

const TOP_LEVEL_EXPECTED = `expected a declaration (${DECLARATION_KEYWORDS.join(', ')})`;

// ---------------------------------------------------------------- messages

/** Describes the token an error was found at; the end of a segment is the next declaration's keyword. */
function describeToken(t: IToken | undefined, follower: IToken | null): string {
  if (t === undefined || t.tokenType === EOF) return follower ? `'${describeText(follower.image)}'` : 'end of file';
  if (tokenMatcher(t, StringLiteral)) return `string ${describeText(t.image)}`;
  if (KEYWORD_TYPES.has(t.tokenType)) return `keyword '${t.image}'`;
  return `'${describeText(t.image)}'`;
}

function describeExpected(t: TokenType): string {
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
class MessageProvider implements IParserErrorMessageProvider {
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
 * reports; `parseSegment` reads the mark back. Only real tokens are marked.
 */
function blame(t: IToken, message: string): string {
  if (t.tokenType === EOF || !Number.isFinite(t.startOffset)) return message;
  return `${BLAME}${t.startOffset}:${t.startOffset + t.image.length}${BLAME}${message}`;
}
const BLAME = '\u0000';

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

const messages = new MessageProvider();

// ---------------------------------------------------------------- the grammar

const EXPRESSION_START: ReadonlySet<TokenType> = new Set([
  Integer, Float, StringToken, UnterminatedString, Kw['true']!, Kw['false']!, Kw['where']!, Identifier, EvalWord, LParen, LBracket, Minus, Bang,
]);

/** Stands in for the token that ends a let value in a Body; no rule accepts it (see LetStatement). */
const LetBarrier = createToken({ name: 'LetBarrier', pattern: Lexer.NA });

/** A problem found by a grammar action (Chevrotain only reports the ones it detects itself). */
interface CustomError {
  readonly token: IToken;
  readonly previous: IToken;
  readonly message: string;
}

/**
 * The Chevrotain parser. Rule names are exactly the EBNF production names;
 * each rule carries its production as a comment. Built once per process.
 */
class RecipeParser extends CstParser {
  /** The text being parsed: gates look for line breaks between tokens. */
  ptText = '';
  /** Errors recorded by grammar actions during the current segment. */
  ptErrors: CustomError[] = [];
  /** For each `let`, the '-', '(' or '[' that would end its value inside a Body (see LetStatement). */
  ptLetEnds = new Map<IToken, IToken>();
  /** True while parsing the let statements of a braced Body. */
  ptInBody = false;
  /** The tokens of the current segment (the parser's input array). */
  ptSegment: IToken[] = [];
  /** Start offsets of the items (members, settings, lets) that began a line, in parse order. */
  ptItemStarts: number[] = [];

  constructor() {
    super(allTokens as TokenType[], {
      recoveryEnabled: true,
      nodeLocationTracking: 'onlyOffset',
      errorMessageProvider: messages,
      maxLookahead: 3,
    });
    this.performSelfAnalysis();
  }

  // ------------------------------------------------------------ file

  // Recipe = { Declaration } ;
  Recipe = this.RULE('Recipe', () => {
    this.MANY(() => this.SUBRULE(this.Declaration));
  });

  // Declaration = ImportDecl | TokenizerDecl | ModelDecl | DatasetDecl | BlockDecl | FnDecl | StageDecl | DeployDecl ;
  Declaration = this.RULE('Declaration', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.ImportDecl) },
      { ALT: () => this.SUBRULE(this.TokenizerDecl) },
      { ALT: () => this.SUBRULE(this.ModelDecl) },
      { ALT: () => this.SUBRULE(this.DatasetDecl) },
      { ALT: () => this.SUBRULE(this.BlockDecl) },
      { ALT: () => this.SUBRULE(this.FnDecl) },
      { ALT: () => this.SUBRULE(this.StageDecl) },
      { ALT: () => this.SUBRULE(this.DeployDecl) },
    ]);
  });

  // ImportDecl = "import" , ModulePath , [ "{" , NameList , "}" ] ;
  ImportDecl = this.RULE('ImportDecl', () => {
    this.CONSUME(Kw['import']!);
    this.SUBRULE(this.ModulePath);
    this.OPTION(() => {
      this.CONSUME(LBrace);
      this.SUBRULE(this.NameList);
      this.CONSUME(RBrace);
    });
  });

  // ModulePath = Identifier , { "." , Identifier } | String ;
  ModulePath = this.RULE('ModulePath', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(Identifier);
          this.MANY(() => {
            this.CONSUME(Dot);
            this.CONSUME2(Identifier);
          });
        },
      },
      { ALT: () => this.CONSUME(StringLiteral) },
    ]);
  });

  // NameList = ImportName , { "," , ImportName } , [ "," ] ;
  NameList = this.RULE('NameList', () => {
    this.commaList(10, (i) => this.subrule(i, this.ImportName), () => this.LA(1).tokenType === Identifier, RBrace, true);
  });

  // ImportName = Identifier , [ "as" , Identifier ] ;
  ImportName = this.RULE('ImportName', () => {
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(Kw['as']!);
      this.CONSUME2(Identifier, { LABEL: 'alias' });
    });
  });

  // TokenizerDecl = "tokenizer" , Identifier , "=" , Expression ;
  TokenizerDecl = this.RULE('TokenizerDecl', () => this.valueDecl(Kw['tokenizer']!));
  // ModelDecl = "model" , Identifier , "=" , Expression ;
  ModelDecl = this.RULE('ModelDecl', () => this.valueDecl(Kw['model']!));
  // DatasetDecl = "dataset" , Identifier , "=" , Expression ;
  DatasetDecl = this.RULE('DatasetDecl', () => this.valueDecl(Kw['dataset']!));

  // ------------------------------------------------------------ blocks and functions

  // BlockDecl = "block" , Identifier , "(" , [ ParamList ] , ")" , [ WhereClause ] , "{" , { BlockMember } , "}" ;
  BlockDecl = this.RULE('BlockDecl', () => {
    this.CONSUME(Kw['block']!);
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.CONSUME(LParen);
    this.OPTION(() => this.SUBRULE(this.ParamList));
    this.CONSUME(RParen);
    this.OPTION2(() => this.SUBRULE(this.WhereClause));
    this.CONSUME(LBrace);
    this.MANY({ GATE: () => this.blockMemberAhead(), DEF: () => this.SUBRULE(this.BlockMember) });
    this.CONSUME(RBrace);
  });

  // BlockMember = ParamMember | ForwardMember | SubmoduleMember ;
  BlockMember = this.RULE('BlockMember', () => {
    this.ACTION(() => this.noteItem());
    this.OR([
      { ALT: () => this.SUBRULE(this.ParamMember) },
      { ALT: () => this.SUBRULE(this.ForwardMember) },
      { ALT: () => this.SUBRULE(this.SubmoduleMember) },
    ]);
  });

  // ParamMember = "param" , Identifier , ":" , Type , "=" , Expression , [ "if" , Expression ] ;
  ParamMember = this.RULE('ParamMember', () => {
    this.CONSUME(Kw['param']!);
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.CONSUME(Colon);
    this.SUBRULE(this.Type);
    this.CONSUME(Equals);
    this.SUBRULE(this.Expression, { LABEL: 'init' });
    this.OPTION(() => {
      this.CONSUME(Kw['if']!);
      this.SUBRULE2(this.Expression, { LABEL: 'condition' });
    });
  });

  // SubmoduleMember = Identifier , "=" , Expression , [ "if" , Expression ] ;
  SubmoduleMember = this.RULE('SubmoduleMember', () => {
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.CONSUME(Equals);
    this.SUBRULE(this.Expression, { LABEL: 'value' });
    this.OPTION(() => {
      this.CONSUME(Kw['if']!);
      this.SUBRULE2(this.Expression, { LABEL: 'condition' });
    });
  });

  // ForwardMember = "forward" , "(" , [ ParamList ] , ")" , "->" , Type , [ WhereClause ] , Body ;
  ForwardMember = this.RULE('ForwardMember', () => {
    this.CONSUME(Kw['forward']!);
    this.CONSUME(LParen);
    this.OPTION(() => this.SUBRULE(this.ParamList));
    this.CONSUME(RParen);
    this.CONSUME(Arrow);
    this.SUBRULE(this.Type);
    this.OPTION2(() => this.SUBRULE(this.WhereClause));
    this.SUBRULE(this.Body);
  });

  // FnDecl = "fn" , Identifier , "(" , [ ParamList ] , ")" , [ "->" , Type ] , [ WhereClause ] , Body ;
  FnDecl = this.RULE('FnDecl', () => {
    this.CONSUME(Kw['fn']!);
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.CONSUME(LParen);
    this.OPTION(() => this.SUBRULE(this.ParamList));
    this.CONSUME(RParen);
    this.OPTION2(() => {
      this.CONSUME(Arrow);
      this.SUBRULE(this.Type);
    });
    this.OPTION3(() => this.SUBRULE(this.WhereClause));
    this.SUBRULE(this.Body);
  });

  // ParamList = Parameter , { "," , Parameter } , [ "," ] ;
  ParamList = this.RULE('ParamList', () => {
    this.commaList(10, (i) => this.subrule(i, this.Parameter), () => this.LA(1).tokenType === Identifier, RParen, true);
  });

  // Parameter = Identifier , [ ":" , Type ] , [ "=" , Expression ] ;
  Parameter = this.RULE('Parameter', () => {
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(Colon);
      this.SUBRULE(this.Type);
    });
    this.OPTION2(() => {
      this.CONSUME(Equals);
      this.SUBRULE(this.Expression, { LABEL: 'default' });
    });
  });

  // WhereClause = "where" , Expression , { "," , Expression } ;
  WhereClause = this.RULE('WhereClause', () => {
    this.CONSUME(Kw['where']!);
    this.commaList(10, (i) => this.subrule(i, this.Expression), () => this.expressionAhead(1), null, false);
  });

  // Body = "=" , Expression | "{" , { LetStatement } , Expression , "}" ;
  Body = this.RULE('Body', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(Equals);
          this.SUBRULE(this.Expression, { LABEL: 'result' });
        },
      },
      {
        ALT: () => {
          this.CONSUME(LBrace);
          const saved = this.ptInBody;
          this.ACTION(() => (this.ptInBody = true));
          try {
            this.MANY(() => this.SUBRULE(this.LetStatement));
          } finally {
            this.ACTION(() => (this.ptInBody = saved));
          }
          this.SUBRULE2(this.Expression, { LABEL: 'result' });
          this.CONSUME(RBrace);
        },
      },
    ]);
  });

  // LetStatement = "let" , Pattern , "=" , Expression ;
  // Inside a braced Body the value ends before a line that starts with '-', '(' or '['
  // at the let's bracket depth: that line is the body's result (see the EBNF notes).
  // The token there is swapped for a barrier no rule accepts while the value is parsed,
  // which keeps the hot expression rules free of gates.
  LetStatement = this.RULE('LetStatement', () => {
    this.ACTION(() => this.noteItem());
    const letToken = this.CONSUME(Kw['let']!);
    const lower = this.ACTION(() => (this.ptInBody ? this.raiseBarrier(letToken) : null));
    try {
      this.SUBRULE(this.Pattern);
      this.CONSUME(Equals);
      this.SUBRULE(this.Expression);
    } finally {
      this.ACTION(() => lower?.());
    }
  });

  // Pattern = Identifier | "(" , Pattern , { "," , Pattern } , ")" ;
  Pattern = this.RULE('Pattern', () => {
    this.OR([
      { ALT: () => this.CONSUME(Identifier) },
      {
        ALT: () => {
          this.CONSUME(LParen);
          this.commaList(10, (i) => this.subrule(i, this.Pattern), () => this.LA(1).tokenType === Identifier || this.LA(1).tokenType === LParen, RParen, false);
          this.CONSUME(RParen);
        },
      },
    ]);
  });

  // ------------------------------------------------------------ types

  // Type = TensorType | TupleType ;
  Type = this.RULE('Type', () => {
    this.OR([{ ALT: () => this.SUBRULE(this.TensorType) }, { ALT: () => this.SUBRULE(this.TupleType) }]);
  });

  // TensorType = Name , [ "[" , [ DimList ] , "]" ] ;   (a Name: the type `model` is a keyword)
  TensorType = this.RULE('TensorType', () => {
    this.CONSUME(Name, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(LBracket);
      this.OPTION2(() => this.SUBRULE(this.DimList));
      this.CONSUME(RBracket);
    });
  });

  // DimList = Dim , { "," , Dim } , [ "," ] ;
  DimList = this.RULE('DimList', () => {
    this.commaList(10, (i) => this.subrule(i, this.Dim), () => this.LA(1).tokenType === Ellipsis || this.expressionAhead(1), RBracket, true);
  });

  // Dim = "..." | Expression ;
  Dim = this.RULE('Dim', () => {
    this.OR([{ ALT: () => this.CONSUME(Ellipsis) }, { ALT: () => this.SUBRULE(this.Expression) }]);
  });

  // TupleType = "(" , Type , { "," , Type } , ")" ;
  TupleType = this.RULE('TupleType', () => {
    this.CONSUME(LParen);
    this.commaList(10, (i) => this.subrule(i, this.Type), () => this.LA(1).tokenType === Identifier || this.LA(1).tokenType === LParen, RParen, false);
    this.CONSUME(RParen);
  });

  // ------------------------------------------------------------ stages and deployment

  // StageDecl = "stage" , Identifier , ":" , Identifier , Expression , [ "on" , Expression ] ,
  //             [ "after" , Identifier , { "," , Identifier } ] , "{" , { StageItem } , "}" ;
  StageDecl = this.RULE('StageDecl', () => {
    this.CONSUME(Kw['stage']!);
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.CONSUME(Colon);
    this.CONSUME2(Identifier, { LABEL: 'stageKind' });
    this.SUBRULE(this.Expression, { LABEL: 'target' });
    this.OPTION(() => {
      this.CONSUME(Kw['on']!);
      this.SUBRULE2(this.Expression, { LABEL: 'dataset' });
    });
    this.OPTION2(() => {
      this.CONSUME(Kw['after']!);
      this.commaList(10, (i) => this.consume(i, Identifier, { LABEL: 'after' }), () => this.LA(1).tokenType === Identifier, LBrace, false);
    });
    this.CONSUME(LBrace);
    // A stage item starts with `let`, `eval every` or `name =`. Anything else ends the loop;
    // the '}' expected there reports it and resumes at the next item (StageItem needs two
    // tokens to choose an alternative, so it cannot recover by itself).
    this.MANY({ GATE: () => this.itemAhead(), DEF: () => this.SUBRULE(this.StageItem) });
    this.CONSUME(RBrace);
  });

  // StageItem = EvalEvery | LetStatement | Setting ;
  StageItem = this.RULE('StageItem', () => {
    this.ACTION(() => this.noteItem());
    this.OR([
      { ALT: () => this.SUBRULE(this.EvalEvery) },
      { ALT: () => this.SUBRULE(this.LetStatement) },
      { ALT: () => this.SUBRULE(this.Setting) },
    ]);
  });

  // EvalEvery = "eval" , "every" , Expression , "on" , Expression ;
  EvalEvery = this.RULE('EvalEvery', () => {
    this.CONSUME(EvalWord);
    this.CONSUME(Kw['every']!);
    this.SUBRULE(this.Expression, { LABEL: 'every' });
    this.CONSUME(Kw['on']!);
    this.SUBRULE2(this.Expression, { LABEL: 'dataset' });
  });

  // Setting = Name , "=" , Expression ;
  Setting = this.RULE('Setting', () => {
    this.ACTION(() => this.noteItem());
    this.CONSUME(Name, { LABEL: 'name' });
    this.CONSUME(Equals);
    this.SUBRULE(this.Expression);
  });

  // DeployDecl = "deploy" , Expression , "to" , Identifier , "{" , { Setting } , "}" ;
  DeployDecl = this.RULE('DeployDecl', () => {
    this.CONSUME(Kw['deploy']!);
    this.SUBRULE(this.Expression, { LABEL: 'target' });
    this.CONSUME(Kw['to']!);
    this.CONSUME(Identifier, { LABEL: 'format' });
    this.CONSUME(LBrace);
    this.MANY({ GATE: () => this.settingAhead(), DEF: () => this.SUBRULE(this.Setting) });
    this.CONSUME(RBrace);
  });

  // ------------------------------------------------------------ expressions

  // Expression = Operand , { BinaryOp , Operand } ;
  // Flat: the builder groups it by the precedence table of the EBNF. One rule level
  // per operand instead of one per precedence level is most of the parser's speed,
  // and operator chains of any length cost no stack.
  Expression = this.RULE('Expression', () => {
    this.SUBRULE(this.Operand);
    this.MANY(() => {
      this.CONSUME(BinaryOp);
      this.SUBRULE2(this.Operand);
    });
  });

  // Operand = { "!" | "-" } , Postfix ;
  Operand = this.RULE('Operand', () => {
    this.MANY(() => this.CONSUME(PrefixOp));
    this.SUBRULE(this.Postfix);
  });

  // Postfix = Primary , { Call | Member | Index } ;
  Postfix = this.RULE('Postfix', () => {
    this.SUBRULE(this.Primary);
    this.MANY(() => {
      this.OR([{ ALT: () => this.SUBRULE(this.Call) }, { ALT: () => this.SUBRULE(this.Member) }, { ALT: () => this.SUBRULE(this.Index) }]);
    });
  });

  // Call = "(" , [ Argument , { "," , Argument } , [ "," ] ] , ")" ;
  Call = this.RULE('Call', () => {
    this.CONSUME(LParen);
    this.OPTION(() => this.commaList(10, (i) => this.subrule(i, this.Argument), () => this.argumentAhead(), RParen, true));
    this.CONSUME(RParen);
  });

  // Argument = [ Name , ":" ] , Expression ;
  Argument = this.RULE('Argument', () => {
    this.OPTION(() => {
      this.CONSUME(Name, { LABEL: 'label' });
      this.CONSUME(Colon);
    });
    this.SUBRULE(this.Expression);
  });

  // Member = "." , Name ;
  Member = this.RULE('Member', () => {
    this.CONSUME(Dot);
    this.CONSUME(Name, { LABEL: 'name' });
  });

  // Index = "[" , Subscript , { "," , Subscript } , [ "," ] , "]" ;
  Index = this.RULE('Index', () => {
    this.CONSUME(LBracket);
    this.commaList(10, (i) => this.subrule(i, this.Subscript), () => this.subscriptAhead(), RBracket, true);
    this.CONSUME(RBracket);
  });

  // Subscript = "..." | [ Expression ] , ":" , [ Expression ] | Expression ;
  // Written as: "..." | ":" [ Expression ] | Expression [ ":" [ Expression ] ], the same language in LL(1).
  Subscript = this.RULE('Subscript', () => {
    this.OR([
      { ALT: () => this.CONSUME(Ellipsis) },
      {
        ALT: () => {
          this.CONSUME(Colon);
          this.OPTION(() => this.SUBRULE(this.Expression, { LABEL: 'end' }));
        },
      },
      {
        ALT: () => {
          this.SUBRULE2(this.Expression, { LABEL: 'start' });
          this.OPTION2(() => {
            this.CONSUME2(Colon);
            this.OPTION3(() => this.SUBRULE3(this.Expression, { LABEL: 'end' }));
          });
        },
      },
    ]);
  });

  // Primary = Integer | Float | String | "true" | "false" | Identifier | "where"
  //         | "(" , Expression , ")"
  //         | "(" , Expression , "," , [ Expression , { "," , Expression } , [ "," ] ] , ")"
  //         | "[" , [ Expression , { "," , Expression } , [ "," ] ] , "]" ;
  // Grouping and tuples share one alternative; the builder tells them apart by the commas.
  Primary = this.RULE('Primary', () => {
    this.OR([
      { ALT: () => this.CONSUME(Integer) },
      { ALT: () => this.CONSUME(Float) },
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.CONSUME(Kw['true']!) },
      { ALT: () => this.CONSUME(Kw['false']!) },
      // A name at the start of a line followed by '=' is the next setting or member, not this value.
      { GATE: () => !(this.LA(2).tokenType === Equals && this.startsLine(this.LA(1))), ALT: () => this.CONSUME(Identifier) },
      // The built-in `where(cond, x, y)`: a where clause never starts where an expression can.
      { ALT: () => this.CONSUME(Kw['where']!, { LABEL: 'Identifier' }) },
      {
        ALT: () => {
          this.CONSUME(LParen);
          this.commaList(10, (i) => this.subrule(i, this.Expression), () => this.expressionAhead(1), RParen, true);
          this.CONSUME(RParen);
        },
      },
      {
        ALT: () => {
          this.CONSUME(LBracket);
          this.OPTION(() => this.commaList(20, (i) => this.subrule(i, this.Expression), () => this.expressionAhead(1), RBracket, true));
          this.CONSUME(RBracket);
        },
      },
    ]);
  });

  // ------------------------------------------------------------ helpers used by the rules

  /** `kw , Identifier , "=" , Expression` — the shape of tokenizer, model and dataset declarations. */
  private valueDecl(kw: TokenType): void {
    this.CONSUME(kw);
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.CONSUME(Equals);
    this.SUBRULE(this.Expression, { LABEL: 'value' });
  }

  /**
   * `elem , { "," , elem } , [ "," ]` (the trailing comma only when `trailing`).
   * An element that follows another without a comma is reported once as a
   * missing comma and parsed as if the comma were there. Uses occurrence
   * indexes `base` and `base + 1`.
   */
  private commaList(base: number, elem: (occurrence: number) => void, startsElem: () => boolean, closer: TokenType | null, trailing: boolean): void {
    elem(base);
    this.many(base, {
      GATE: () => {
        if (this.LA(1).tokenType === Comma) return !(trailing && closer !== null && this.LA(2).tokenType === closer);
        return startsElem() && !this.itemAhead();
      },
      DEF: () => {
        const comma = this.option(base, () => this.consume(base, Comma));
        this.ACTION(() => {
          if (comma === undefined) {
            const or = closer === null ? '' : ` or ${describeExpected(closer)}`;
            this.ptErrors.push({ token: this.LA(1), previous: this.LA(0), message: `expected ','${or} but found ${describeToken(this.LA(1), messages.follower)}` });
          }
        });
        elem(base + 1);
      },
    });
    if (trailing) this.option(base + 1, () => this.consume(base + 1, Comma));
  }

  private expressionAhead(k: number): boolean {
    return EXPRESSION_START.has(this.LA(k).tokenType);
  }

  private argumentAhead(): boolean {
    return this.expressionAhead(1) || (tokenMatcher(this.LA(1), Name) && this.LA(2).tokenType === Colon);
  }

  private subscriptAhead(): boolean {
    const t = this.LA(1).tokenType;
    return t === Ellipsis || t === Colon || this.expressionAhead(1);
  }

  /** True when the next tokens start something no list element can: a setting `name =`, `let`, `eval every`, a block member. */
  private itemAhead(): boolean {
    const t = this.LA(1);
    if (t.tokenType === Kw['let'] || t.tokenType === Kw['param'] || t.tokenType === Kw['forward']) return true;
    if (t.tokenType === EvalWord && this.LA(2).tokenType === Kw['every']) return true;
    return tokenMatcher(t, Name) && this.LA(2).tokenType === Equals;
  }

  /** A block member starts with `param`, `forward`, or a name followed by '=' or at the start of a line (a member missing its '='). */
  private blockMemberAhead(): boolean {
    const t = this.LA(1);
    if (t.tokenType === Kw['param'] || t.tokenType === Kw['forward']) return true;
    return t.tokenType === Identifier || t.tokenType === EvalWord ? this.LA(2).tokenType === Equals || this.startsLine(t) : false;
  }

  /** A deploy setting: a name followed by '=', or at the start of a line (a setting missing its '='). */
  private settingAhead(): boolean {
    const t = this.LA(1);
    return tokenMatcher(t, Name) && (this.LA(2).tokenType === Equals || this.startsLine(t));
  }

  /** Records where an item starting a line begins: evidence, for filterProblems, that the parser is back in step. */
  private noteItem(): void {
    const t = this.LA(1);
    if (isReal(t) && this.startsLine(t)) this.ptItemStarts.push(t.startOffset);
  }

  /**
   * Puts a barrier in place of the token that ends this let's value (a '-',
   * '(' or '[' starting a line at the let's bracket depth); returns the undo.
   */
  private raiseBarrier(letToken: IToken): (() => void) | null {
    const end = this.ptLetEnds.get(letToken);
    if (end === undefined) return null;
    const seg = this.ptSegment;
    let lo = 0;
    let hi = seg.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seg[mid]!.startOffset < end.startOffset) lo = mid + 1;
      else hi = mid;
    }
    if (seg[lo] !== end) return null;
    seg[lo] = { ...end, tokenType: LetBarrier, tokenTypeIdx: LetBarrier.tokenTypeIdx! };
    return () => {
      seg[lo] = end;
    };
  }

  /** Whether a line break separates `t` from the token before it. */
  private startsLine(t: IToken): boolean {
    const prev = this.LA(0);
    if (prev.tokenType === EOF || !Number.isFinite(prev.startOffset)) return true;
    const text = this.ptText;
    for (let i = prev.startOffset + prev.image.length; i < t.startOffset; i++) if (text.charCodeAt(i) === 10) return true;
    return false;
  }

  // ------------------------------------------------------------ recovery tuning

  /**
   * Single-token insertion, as Chevrotain does it (the found token is a
   * possible follower), plus: a missing closer is inserted before a token
   * that clearly belongs to the enclosing construct.
   */
  canRecoverWithSingleTokenInsertion(expected: TokenType, follows: TokenType[]): boolean {
    const la = this.LA(1);
    if (expected === RParen || expected === RBracket || expected === RBrace) {
      if (la.tokenType === EOF || la.tokenType === RBrace || this.itemAhead()) return true;
    }
    return follows.some((f) => tokenMatcher(la, f));
  }

  /** Resynchronising inside a repetition only pays off for item loops closed by `}` and the top level. */
  shouldInRepetitionRecoveryBeTried(expected: TokenType, nextTokenIndex: number, notStuck: boolean): boolean {
    if (expected !== RBrace && expected !== EOF) return false;
    if (!notStuck || tokenMatcher(this.LA(1), expected)) return false;
    // Prefer single-token insertion or deletion when either works.
    if (this.canRecoverWithSingleTokenInsertion(expected, []) || tokenMatcher(this.LA(2), expected)) return false;
    return nextTokenIndex !== undefined;
  }
}

let parserInstance: RecipeParser | null = null;

/** The parser is expensive to build (grammar analysis) and cheap to reuse. */
function getParser(): RecipeParser {
  parserInstance ??= new RecipeParser();
  return parserInstance;
}

// ---------------------------------------------------------------- driver

interface Problem {
  /** Where the parser stood when it found the problem: decides whether a lexical error explains it. */
  readonly anchor: number;
  /** A misspelt declaration keyword at top level (`modle x = ...`): independent of any earlier error. */
  readonly misspeltDeclaration?: boolean;
  readonly offset: number;
  readonly span: A.Span;
  readonly message: string;
  readonly hint: string | null;
}

interface SegmentResult {
  readonly cst: CstNode;
  readonly problems: Problem[];
  /** Offsets where items starting a line began (see RecipeParser.noteItem), ascending. */
  readonly itemStarts: number[];
}

function isReal(t: IToken | undefined): t is IToken {
  return t !== undefined && t.tokenType !== EOF && !t.isInsertedInRecovery && Number.isFinite(t.startOffset);
}

function tokenEnd(t: IToken): number {
  return t.startOffset + t.image.length;
}

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
function segments(tokens: readonly IToken[], text: string): [number, number][] {
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
function limitNesting(tokens: IToken[], source: SourceFile, bag: DiagnosticBag, quiet: number[]): IToken[] {
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
    if (isReal(token)) {
      problems.push({ anchor: token.startOffset, offset: token.startOffset, span: source.span(token.startOffset, tokenEnd(token)), message, hint, misspeltDeclaration });
    } else {
      // Inserted tokens and the end of input have no position: pin to the end of the previous token.
      const at = isReal(previous) ? tokenEnd(previous) : endOffset;
      problems.push({ anchor: at, offset: at, span: source.span(at, at), message, hint });
    }
  };
  for (const e of parser.errors as (IRecognitionException & { previousToken?: IToken })[]) {
    let message = e.message;
    if (message.startsWith(BLAME)) {
      const close = message.indexOf(BLAME, 1);
      const [start, end] = message.slice(1, close).split(':').map(Number) as [number, number];
      message = message.slice(close + 1);
      const anchor = isReal(e.token) ? e.token.startOffset : start;
      problems.push({ anchor, offset: start, span: source.span(start, end), message, hint: keywordHint(message, undefined, undefined) });
      continue;
    }
    const topLevel = message.includes(' at top level: ');
    const hint = topLevel && isReal(e.token) ? declarationHint(e.token) : keywordHint(message, e.token, e.previousToken);
    place(e.token, e.previousToken, message, hint, topLevel && hint !== null);
  }
  for (const e of parser.ptErrors) place(e.token, e.previous, e.message, keywordHint(e.message, e.token, e.previous));
  problems.sort((a, b) => a.offset - b.offset);
  return { cst, problems, itemStarts: [...new Set(parser.ptItemStarts)].sort((a, b) => a - b) };
}

/** Contextual words and keywords long enough that a near miss (`afer`, `evry`) is worth a hint. */
const HINT_WORDS: readonly string[] = [...KEYWORDS, 'eval'].filter((w) => w.length >= 4);

/** "did you mean 'after'?" when the offending token, or the one before it, is a misspelt keyword (`afer`, `parm w`). */
function keywordHint(message: string, found: IToken | undefined, previous: IToken | undefined): string | null {
  const m = / but found '([A-Za-z_][A-Za-z0-9_]*)'$/.exec(message);
  const words = [m?.[1], found?.tokenType === Identifier ? found.image : undefined, previous?.tokenType === Identifier ? previous.image : undefined];
  for (const word of words) {
    if (!word || word.length < 4) continue;
    const best = nearMiss(word, HINT_WORDS);
    if (best && best !== word) return `did you mean '${best}'?`;
  }
  return null;
}

function declarationHint(t: IToken): string | null {
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

/** Start offsets of the real tokens of a CST, for deciding whether the parser made progress between two errors. */
function tokenOffsets(node: CstNode, out: number[]): number[] {
  for (const list of Object.values(node.children)) {
    for (const el of list) {
      if ('tokenType' in el) {
        if (isReal(el)) out.push(el.startOffset);
      } else tokenOffsets(el, out);
    }
  }
  return out;
}

/**
 * Drops follow-up errors. The first error of a declaration is always kept; a
 * later one only when the parser has demonstrably got back in step since the
 * previous error: an item (member, setting, let) began a new line after it
 * and at least two of that item's tokens parsed before the new error, or it
 * is a misspelt declaration keyword (`modle`). Errors right after text the
 * lexer already reported are dropped too.
 */
function filterProblems(problems: Problem[], cst: CstNode, itemStarts: readonly number[], tokens: readonly IToken[], quiet: readonly number[]): Problem[] {
  if (problems.length === 0) return problems;
  const kept: Problem[] = [];
  let consumed: number[] | null = null;
  let previous: Problem | null = null;
  for (const p of problems) {
    if (isQuiet(p.anchor, tokens, quiet)) continue;
    const last = previous;
    previous = p;
    if (last !== null && !p.misspeltDeclaration) {
      // Measured from the previous error, kept or not: a dropped error is still a sign of being out of step.
      const start = lastBefore(itemStarts, p.anchor - 1);
      if (start === null || start <= last.anchor) continue;
      consumed ??= tokenOffsets(cst, []).sort((a, b) => a - b);
      if (countInRange(consumed, start, p.anchor) < 2) continue;
    }
    kept.push(p);
  }
  return kept;
}

/** The largest value of a sorted array that is at most `limit`, or null. */
function lastBefore(sorted: readonly number[], limit: number): number | null {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= limit) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? sorted[lo - 1]! : null;
}

/** How many values of a sorted array lie in [from, to). */
function countInRange(sorted: readonly number[], from: number, to: number): number {
  return lowerBound(sorted, to) - lowerBound(sorted, from);
}

function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Whether an already-reported lexical problem lies between the error position and the token before it. */
function isQuiet(offset: number, tokens: readonly IToken[], quiet: readonly number[]): boolean {
  if (quiet.length === 0) return false;
  // The previous token ends at or before `offset`; find where it ends.
  let lo = 0;
  let hi = tokens.length - 1;
  let prevEnd = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const t = tokens[mid]!;
    if (t.startOffset < offset) {
      prevEnd = Math.max(prevEnd, tokenEnd(t));
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return anyInRange(quiet, Math.min(prevEnd, offset), offset + 1);
}

/** Whether a sorted array holds a value in [from, to). */
function anyInRange(sorted: readonly number[], from: number, to: number): boolean {
  return countInRange(sorted, from, to) > 0;
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
function letEnds(tokens: readonly IToken[], text: string): Map<IToken, IToken> {
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

/** Lexes and parses; calls `onSegment` with each declaration's CST. Shared by parseRecipe and the grammar tests. */
function run(text: string, source: SourceFile, bag: DiagnosticBag, onSegment: (cst: CstNode, tokenCount: number) => void): A.Comment[] {
  const parser = getParser();
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
  return Object.keys(getParser().getGAstProductions());
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

// ---------------------------------------------------------------- CST → AST

type Kids = Record<string, CstElement[] | undefined>;
const NONE: readonly never[] = Object.freeze([]);

// CST accessors: a child missing after error recovery reads as absent, never as an exception.
function subs(n: CstNode | undefined, key: string): readonly CstNode[] {
  return ((n?.children as Kids | undefined)?.[key] as CstNode[] | undefined) ?? NONE;
}
function sub(n: CstNode | undefined, key: string): CstNode | undefined {
  return ((n?.children as Kids | undefined)?.[key] as CstNode[] | undefined)?.[0];
}
function toks(n: CstNode | undefined, key: string): readonly IToken[] {
  return ((n?.children as Kids | undefined)?.[key] as IToken[] | undefined) ?? NONE;
}
function tok(n: CstNode | undefined, key: string): IToken | undefined {
  return ((n?.children as Kids | undefined)?.[key] as IToken[] | undefined)?.[0];
}

/**
 * The one place CST becomes AST. Every node's `loc` comes from `nodeSpan` or
 * `tokenSpan`; missing parts (from error recovery) become empty names and
 * `ErrorExpr` placed at the end of the last real token seen (`pos`).
 */
class AstBuilder {
  /** End offset of the last real token or node converted: where a missing piece is placed. */
  private pos = 0;
  /** Depths of expressions deeper than 1; only kept for declarations long enough to exceed the limit. */
  private depths: Map<A.Expression, number> | null = null;
  private deepReported = false;

  constructor(
    private readonly source: SourceFile,
    private readonly bag: DiagnosticBag,
  ) {}

  // ------------------------------------------------------------ spans

  tokenSpan(t: IToken | undefined): A.Span {
    if (isReal(t)) {
      this.pos = tokenEnd(t);
      return this.source.span(t.startOffset, this.pos);
    }
    return this.source.span(this.pos, this.pos);
  }

  /** Moves `pos` past a token the AST does not keep (`=`, `:`), so a missing piece after it is placed after it. */
  private skip(t: IToken | undefined): void {
    if (isReal(t)) this.pos = tokenEnd(t);
  }

  /** Span of a whole CST node; call after converting its children. */
  private nodeSpan(n: CstNode | undefined): A.Span {
    const loc = n?.location;
    if (loc && Number.isFinite(loc.startOffset) && Number.isFinite(loc.endOffset) && loc.endOffset! >= loc.startOffset) {
      this.pos = Math.max(this.pos, loc.endOffset! + 1);
      return this.source.span(loc.startOffset, loc.endOffset! + 1);
    }
    return this.source.span(this.pos, this.pos);
  }

  private ident(t: IToken | undefined): A.Identifier {
    return { kind: 'Identifier', name: isReal(t) ? t.image : '', loc: this.tokenSpan(t) };
  }

  errorExpr(): A.ErrorExpr {
    return { kind: 'ErrorExpr', loc: this.source.span(this.pos, this.pos) };
  }

  /**
   * Records an expression's depth (from its direct sub-expressions); one
   * deeper than MAX_EXPRESSION_DEPTH becomes ErrorExpr, reported once.
   */
  mk(e: A.Expression): A.Expression {
    const depths = this.depths;
    if (depths === null) return e;
    let d = 0;
    const see = (c: A.Expression | null): void => {
      if (c !== null) d = Math.max(d, depths.get(c) ?? 1);
    };
    switch (e.kind) {
      case 'BinaryExpr':
        see(e.left);
        see(e.right);
        break;
      case 'UnaryExpr':
        see(e.operand);
        break;
      case 'ParenExpr':
        see(e.expression);
        break;
      case 'MemberExpr':
        see(e.object);
        break;
      case 'CallExpr':
        see(e.callee);
        for (const a of e.args) see(a.value);
        break;
      case 'IndexExpr':
        see(e.object);
        for (const x of e.subscripts) {
          if (x.kind === 'IndexSubscript') see(x.index);
          else if (x.kind === 'SliceSubscript') {
            see(x.start);
            see(x.end);
          }
        }
        break;
      case 'TupleExpr':
      case 'ListExpr':
        for (const x of e.elements) see(x);
        break;
      default:
        return e;
    }
    if (d + 1 > MAX_EXPRESSION_DEPTH) return this.tooDeep(e.loc);
    depths.set(e, d + 1);
    return e;
  }

  // ------------------------------------------------------------ declarations

  /**
   * The declarations of one segment's `Recipe` node. An expression tree can
   * be no deeper than its token count, so depths are only tracked for
   * segments longer than MAX_EXPRESSION_DEPTH tokens.
   */
  recipe(n: CstNode, tokenCount: number): A.Declaration[] {
    this.depths = tokenCount > MAX_EXPRESSION_DEPTH ? new Map() : null;
    const out: A.Declaration[] = [];
    for (const d of subs(n, 'Declaration')) {
      const decl = this.declaration(d);
      if (decl) out.push(decl);
    }
    return out;
  }

  private declaration(n: CstNode): A.Declaration | null {
    let key = '';
    for (const k in n.children) key = k;
    const c = sub(n, key);
    if (!c) return null;
    switch (key) {
      case 'ImportDecl':
        return this.importDecl(c);
      case 'TokenizerDecl':
        return this.valueDecl(c, 'TokenizerDecl');
      case 'ModelDecl':
        return this.valueDecl(c, 'ModelDecl');
      case 'DatasetDecl':
        return this.valueDecl(c, 'DatasetDecl');
      case 'BlockDecl':
        return this.blockDecl(c);
      case 'FnDecl':
        return this.fnDecl(c);
      case 'StageDecl':
        return this.stageDecl(c);
      case 'DeployDecl':
        return this.deployDecl(c);
      default:
        return null;
    }
  }

  private importDecl(n: CstNode): A.ImportDecl {
    this.skip(tok(n, 'KwImport'));
    const p = sub(n, 'ModulePath');
    let path: A.ImportDecl['path'];
    const str = tok(p, 'StringLiteral');
    if (str) {
      path = { kind: 'StringLiteral', value: stringValue(str), loc: this.tokenSpan(str) };
    } else {
      const segments = toks(p, 'Identifier').map((t) => this.ident(t));
      path = { kind: 'ModulePath', segments, loc: this.nodeSpan(p) };
    }
    const list = sub(n, 'NameList');
    const names = tok(n, 'LBrace')
      ? subs(list, 'ImportName').map((m): A.ImportName => {
          const name = this.ident(tok(m, 'name'));
          const alias = tok(m, 'KwAs') ? this.ident(tok(m, 'alias')) : null;
          return { kind: 'ImportName', name, alias, loc: this.nodeSpan(m) };
        })
      : null;
    return { kind: 'ImportDecl', path, names, loc: this.nodeSpan(n) };
  }

  private valueDecl<K extends 'TokenizerDecl' | 'ModelDecl' | 'DatasetDecl'>(n: CstNode, kind: K): A.Declaration {
    const name = this.ident(tok(n, 'name'));
    this.skip(tok(n, 'Equals'));
    const value = this.expr(sub(n, 'value'));
    return { kind, name, value, loc: this.nodeSpan(n) } as A.TokenizerDecl | A.ModelDecl | A.DatasetDecl;
  }

  private blockDecl(n: CstNode): A.BlockDecl {
    const name = this.ident(tok(n, 'name'));
    const params = this.params(sub(n, 'ParamList'));
    const where = this.where(sub(n, 'WhereClause'));
    const members: A.BlockMember[] = [];
    for (const m of subs(n, 'BlockMember')) {
      const member = this.blockMember(m);
      if (member) members.push(member);
    }
    return { kind: 'BlockDecl', name, params, where, members, loc: this.nodeSpan(n) };
  }

  private blockMember(n: CstNode): A.BlockMember | null {
    const p = sub(n, 'ParamMember');
    if (p) {
      const name = this.ident(tok(p, 'name'));
      this.skip(tok(p, 'Colon'));
      const type = this.type(sub(p, 'Type'));
      this.skip(tok(p, 'Equals'));
      const init = this.expr(sub(p, 'init'));
      const condition = tok(p, 'KwIf') ? this.expr(sub(p, 'condition')) : null;
      return { kind: 'ParamMember', name, type, init, condition, loc: this.nodeSpan(p) };
    }
    const f = sub(n, 'ForwardMember');
    if (f) {
      const params = this.params(sub(f, 'ParamList'));
      this.skip(tok(f, 'Arrow'));
      const returnType = this.type(sub(f, 'Type'));
      const where = this.where(sub(f, 'WhereClause'));
      const body = this.body(sub(f, 'Body'));
      return { kind: 'ForwardMember', params, returnType, where, body, loc: this.nodeSpan(f) };
    }
    const s = sub(n, 'SubmoduleMember');
    if (s) {
      const name = this.ident(tok(s, 'name'));
      this.skip(tok(s, 'Equals'));
      const value = this.expr(sub(s, 'value'));
      const condition = tok(s, 'KwIf') ? this.expr(sub(s, 'condition')) : null;
      return { kind: 'SubmoduleMember', name, value, condition, loc: this.nodeSpan(s) };
    }
    return null;
  }

  private fnDecl(n: CstNode): A.FnDecl {
    const name = this.ident(tok(n, 'name'));
    const params = this.params(sub(n, 'ParamList'));
    const returnType = tok(n, 'Arrow') ? this.type(sub(n, 'Type')) : null;
    const where = this.where(sub(n, 'WhereClause'));
    const body = this.body(sub(n, 'Body'));
    return { kind: 'FnDecl', name, params, returnType, where, body, loc: this.nodeSpan(n) };
  }

  private params(n: CstNode | undefined): A.Parameter[] {
    return subs(n, 'Parameter').map((p): A.Parameter => {
      const name = this.ident(tok(p, 'name'));
      const type = tok(p, 'Colon') ? this.type(sub(p, 'Type')) : null;
      this.skip(tok(p, 'Equals'));
      const dflt = tok(p, 'Equals') ? this.expr(sub(p, 'default')) : null;
      return { kind: 'Parameter', name, type, default: dflt, loc: this.nodeSpan(p) };
    });
  }

  private where(n: CstNode | undefined): A.Expression[] {
    if (!n) return [];
    this.skip(tok(n, 'KwWhere'));
    const out = subs(n, 'Expression').map((e) => this.expr(e));
    return out.length > 0 ? out : [this.errorExpr()];
  }

  private body(n: CstNode | undefined): A.Body {
    const braced = tok(n, 'LBrace') !== undefined;
    this.skip(tok(n, braced ? 'LBrace' : 'Equals'));
    const statements = subs(n, 'LetStatement').map((s) => this.letStatement(s));
    const result = this.expr(sub(n, 'result'));
    return { kind: 'Body', braced, statements, result, loc: this.nodeSpan(n) };
  }

  private letStatement(n: CstNode): A.LetStatement {
    this.skip(tok(n, 'KwLet'));
    const pattern = this.pattern(sub(n, 'Pattern'));
    this.skip(tok(n, 'Equals'));
    const value = this.expr(sub(n, 'Expression'));
    return { kind: 'LetStatement', pattern, value, loc: this.nodeSpan(n) };
  }

  private pattern(n: CstNode | undefined): A.Pattern {
    if (tok(n, 'LParen')) {
      const elements = subs(n, 'Pattern').map((p) => this.pattern(p));
      return { kind: 'TuplePattern', elements, loc: this.nodeSpan(n) };
    }
    const name = this.ident(tok(n, 'Identifier'));
    return { kind: 'NamePattern', name, loc: name.loc };
  }

  private stageDecl(n: CstNode): A.StageDecl {
    const name = this.ident(tok(n, 'name'));
    this.skip(tok(n, 'Colon'));
    const stageKind = this.ident(tok(n, 'stageKind'));
    const target = this.expr(sub(n, 'target'));
    this.skip(tok(n, 'KwOn'));
    const dataset = tok(n, 'KwOn') ? this.expr(sub(n, 'dataset')) : null;
    const after = toks(n, 'after').map((t) => this.ident(t));
    const items: A.StageItem[] = [];
    for (const it of subs(n, 'StageItem')) {
      const e = sub(it, 'EvalEvery');
      const l = sub(it, 'LetStatement');
      const s = sub(it, 'Setting');
      if (e) {
        this.skip(tok(e, 'KwEvery'));
        const every = this.expr(sub(e, 'every'));
        this.skip(tok(e, 'KwOn'));
        const dataset = this.expr(sub(e, 'dataset'));
        items.push({ kind: 'EvalEvery', every, dataset, loc: this.nodeSpan(e) });
      } else if (l) items.push(this.letStatement(l));
      else if (s) items.push(this.setting(s));
    }
    return { kind: 'StageDecl', name, stageKind, target, dataset, after, items, loc: this.nodeSpan(n) };
  }

  private setting(n: CstNode): A.Setting {
    const name = this.ident(tok(n, 'name'));
    this.skip(tok(n, 'Equals'));
    const value = this.expr(sub(n, 'Expression'));
    return { kind: 'Setting', name, value, loc: this.nodeSpan(n) };
  }

  private deployDecl(n: CstNode): A.DeployDecl {
    this.skip(tok(n, 'KwDeploy'));
    const target = this.expr(sub(n, 'target'));
    this.skip(tok(n, 'KwTo'));
    const format = this.ident(tok(n, 'format'));
    const settings = subs(n, 'Setting').map((s) => this.setting(s));
    return { kind: 'DeployDecl', target, format, settings, loc: this.nodeSpan(n) };
  }

  // ------------------------------------------------------------ types

  private type(n: CstNode | undefined): A.TypeNode {
    const tuple = sub(n, 'TupleType');
    if (tuple) {
      const elements = subs(tuple, 'Type').map((t) => this.type(t));
      return { kind: 'TupleTypeNode', elements, loc: this.nodeSpan(tuple) };
    }
    const t = sub(n, 'TensorType');
    const name = this.ident(tok(t, 'name'));
    let dims: A.DimNode[] | null = null;
    if (tok(t, 'LBracket')) {
      this.skip(tok(t, 'LBracket'));
      dims = subs(sub(t, 'DimList'), 'Dim').map((d): A.DimNode => {
        const e = tok(d, 'Ellipsis');
        return e ? { kind: 'EllipsisDim', loc: this.tokenSpan(e) } : this.expr(sub(d, 'Expression'));
      });
    }
    return { kind: 'TensorTypeNode', name, dims, loc: t ? this.nodeSpan(t) : name.loc };
  }

  // ------------------------------------------------------------ expressions

  /**
   * An Expression node: operands and operators in a row, grouped here by
   * precedence climbing over BINARY_PRECEDENCE (the precedence table of the EBNF).
   */
  expr(n: CstNode | undefined): A.Expression {
    if (!n) return this.errorExpr();
    const operands = subs(n, 'Operand');
    const ops = toks(n, 'BinaryOp');
    const first = operands[0];
    // The common case: one operand without prefix operators.
    if (ops.length === 0 && first !== undefined && toks(first, 'PrefixOp').length === 0) return this.postfix(sub(first, 'Postfix'));
    return new Climber(this, operands, ops).run();
  }

  /** Reports once per builder: a deeper tree could exhaust the stack of later phases. */
  tooDeep(loc: A.Span): A.Expression {
    if (!this.deepReported) {
      this.deepReported = true;
      this.bag.report('syntax-error', `expression nested too deeply (more than ${MAX_EXPRESSION_DEPTH} levels)`, loc, { hint: 'split it with let statements' });
    }
    return { kind: 'ErrorExpr', loc };
  }

  /** Reports a syntax error found while grouping operators (chained comparisons, a misplaced '!'). */
  operatorError(t: IToken, message: string): void {
    this.bag.report('syntax-error', message, this.source.span(t.startOffset, tokenEnd(t)));
  }

  postfix(n: CstNode | undefined): A.Expression {
    if (!n) return this.errorExpr();
    let e = this.primary(sub(n, 'Primary'));
    const calls = subs(n, 'Call');
    const members = subs(n, 'Member');
    const indexes = subs(n, 'Index');
    const count = calls.length + members.length + indexes.length;
    if (count === 0) return e;
    // The CST groups children by kind; with mixed kinds, source order is restored from their offsets.
    let suffixes: readonly CstNode[];
    if (count === calls.length) suffixes = calls;
    else if (count === members.length) suffixes = members;
    else if (count === indexes.length) suffixes = indexes;
    else suffixes = [...calls, ...members, ...indexes].sort((a, b) => (a.location?.startOffset ?? 0) - (b.location?.startOffset ?? 0));
    for (const s of suffixes) {
      if (s.name === 'Call') {
        const args = subs(s, 'Argument').map((a): A.Argument => {
          const labelTok = tok(a, 'label');
          const label = labelTok ? this.ident(labelTok) : null;
          this.skip(tok(a, 'Colon'));
          const value = this.expr(sub(a, 'Expression'));
          return { kind: 'Argument', label, value, loc: this.nodeSpan(a) };
        });
        e = this.mk({ kind: 'CallExpr', callee: e, args, loc: joinSpans(e.loc, this.nodeSpan(s)) });
      } else if (s.name === 'Member') {
        this.skip(tok(s, 'Dot'));
        const member = this.ident(tok(s, 'name'));
        e = this.mk({ kind: 'MemberExpr', object: e, member, loc: joinSpans(e.loc, this.nodeSpan(s)) });
      } else {
        const subscripts = subs(s, 'Subscript').map((x) => this.subscript(x));
        e = this.mk({ kind: 'IndexExpr', object: e, subscripts, loc: joinSpans(e.loc, this.nodeSpan(s)) });
      }
    }
    return e;
  }

  private subscript(n: CstNode): A.Subscript {
    const dots = tok(n, 'Ellipsis');
    if (dots) return { kind: 'EllipsisSubscript', loc: this.tokenSpan(dots) };
    const colon = tok(n, 'Colon');
    const start = sub(n, 'start');
    if (!colon) return { kind: 'IndexSubscript', index: this.expr(start), loc: this.nodeSpan(n) };
    const s = start ? this.expr(start) : null;
    this.skip(colon);
    const endNode = sub(n, 'end');
    const e = endNode ? this.expr(endNode) : null;
    return { kind: 'SliceSubscript', start: s, end: e, loc: this.nodeSpan(n) };
  }

  private primary(n: CstNode | undefined): A.Expression {
    if (!n) return this.errorExpr();
    const c = n.children as Kids;
    const int = c['Integer']?.[0] as IToken | undefined;
    if (int) {
      const raw = int.image;
      return { kind: 'NumberLiteral', value: Number(raw.includes('_') ? raw.replace(/_/g, '') : raw), isInteger: true, raw, loc: this.tokenSpan(int) };
    }
    const flt = c['Float']?.[0] as IToken | undefined;
    if (flt) return { kind: 'NumberLiteral', value: Number(flt.image), isInteger: false, raw: flt.image, loc: this.tokenSpan(flt) };
    const str = c['StringLiteral']?.[0] as IToken | undefined;
    if (str) return { kind: 'StringLiteral', value: stringValue(str), loc: this.tokenSpan(str) };
    const yes = c['KwTrue']?.[0] as IToken | undefined;
    if (yes) return { kind: 'BoolLiteral', value: true, loc: this.tokenSpan(yes) };
    const no = c['KwFalse']?.[0] as IToken | undefined;
    if (no) return { kind: 'BoolLiteral', value: false, loc: this.tokenSpan(no) };
    const id = c['Identifier']?.[0] as IToken | undefined;
    if (id) return isReal(id) ? { kind: 'NameExpr', name: id.image, loc: this.tokenSpan(id) } : this.errorExpr();
    if (c['LParen']) {
      this.skip(tok(n, 'LParen'));
      const elements = subs(n, 'Expression').map((e) => this.expr(e));
      const commas = toks(n, 'Comma').length;
      const loc = this.nodeSpan(n);
      if (elements.length === 0) return { kind: 'ErrorExpr', loc };
      if (elements.length === 1 && commas === 0) return this.mk({ kind: 'ParenExpr', expression: elements[0]!, loc });
      return this.mk({ kind: 'TupleExpr', elements, loc });
    }
    if (c['LBracket']) {
      this.skip(tok(n, 'LBracket'));
      const elements = subs(n, 'Expression').map((e) => this.expr(e));
      return this.mk({ kind: 'ListExpr', elements, loc: this.nodeSpan(n) });
    }
    return this.errorExpr();
  }
}


/**
 * Groups one flat Expression node by precedence climbing: left-associative
 * levels, right-associative '**', non-associative comparisons, and prefix
 * operators whose operand extends over the operators that bind tighter.
 * It recurses only per prefix operator and per '**', to a capped depth.
 */
class Climber {
  private operand = 0;
  private prefix = 0;
  private op = 0;
  private depth = 0;

  constructor(
    private readonly b: AstBuilder,
    private readonly operands: readonly CstNode[],
    private readonly ops: readonly IToken[],
  ) {}

  run(): A.Expression {
    return this.climb(0);
  }

  /** The current operand followed by operators of precedence at least `min` and their operands. */
  private climb(min: number): A.Expression {
    if (++this.depth > MAX_EXPRESSION_DEPTH) return this.abandon();
    let left = this.unary();
    let comparisons = 0;
    for (;;) {
      const opToken = this.ops[this.op];
      if (opToken === undefined || this.depth > MAX_EXPRESSION_DEPTH) break;
      const prec = BINARY_PRECEDENCE[opToken.image as A.BinaryOp] ?? PREC_OR;
      if (prec < min) break;
      this.op++;
      if (prec === PREC_COMPARE && ++comparisons === 2) {
        this.b.operatorError(opToken, `comparison operators do not chain: '${opToken.image}' after a comparison needs parentheses`);
      }
      const opLoc = this.b.tokenSpan(opToken);
      this.operand++;
      this.prefix = 0;
      this.checkNot(prec, opToken);
      // '**' is right associative; every other level is left associative.
      const right = this.climb(prec === PREC_POW ? prec : prec + 1);
      left = this.b.mk({ kind: 'BinaryExpr', op: opToken.image as A.BinaryOp, left, right, opLoc, loc: joinSpans(left.loc, right.loc) });
    }
    this.depth--;
    return left;
  }

  /** The current operand: its next prefix operator applied to what binds tighter, or else its postfix expression. */
  private unary(): A.Expression {
    const node = this.operands[this.operand];
    if (node === undefined) return this.b.errorExpr();
    const prefixes = toks(node, 'PrefixOp');
    const p = prefixes[this.prefix];
    if (p === undefined) return this.b.postfix(sub(node, 'Postfix'));
    this.prefix++;
    const isNot = p.tokenType === Bang;
    const next = prefixes[this.prefix];
    if (!isNot && next !== undefined && next.tokenType === Bang) this.b.operatorError(next, "'!' after '-' needs parentheses: write -(!x)");
    const loc = this.b.tokenSpan(p);
    const inner = this.climb(isNot ? PREC_NOT + 1 : PREC_NEG + 1);
    return this.b.mk({ kind: 'UnaryExpr', op: isNot ? '!' : '-', operand: inner, loc: joinSpans(loc, inner.loc) });
  }

  /** '!' binds looser than comparisons, so it may only follow '||' or '&&': `a + !b` needs parentheses. */
  private checkNot(prec: number, opToken: IToken): void {
    const node = this.operands[this.operand];
    const first = node ? toks(node, 'PrefixOp')[0] : undefined;
    if (first !== undefined && first.tokenType === Bang && prec > PREC_AND) {
      this.b.operatorError(first, `'!' after '${opToken.image}' needs parentheses: write (!x)`);
    }
  }

  /** Too deep: the rest of this expression becomes one ErrorExpr. */
  private abandon(): A.Expression {
    const at = this.ops[this.op] ?? this.ops[this.ops.length - 1];
    const e = at ? this.b.tooDeep(this.b.tokenSpan(at)) : this.b.errorExpr();
    this.operand = this.operands.length;
    this.op = this.ops.length;
    this.depth--;
    return e;
  }
}

/** The decoded value the lexer left on a string token. */
function stringValue(t: IToken): string {
  return typeof t.payload === 'string' ? t.payload : '';
}
