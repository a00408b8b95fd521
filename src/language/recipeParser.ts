/**
 * The grammar: the Chevrotain CST parser for pt-recipe. Rule names are
 * exactly the EBNF production names of grammar/pt-recipe.ebnf, and each rule
 * carries its production as a comment. Besides the rules, the class holds the
 * gates that keep lists and item loops in step and the tuning of Chevrotain's
 * own recovery; the driver (parser.ts) feeds it one segment at a time.
 */
import { createToken, CstParser, EOF, Lexer, tokenMatcher, type IToken, type TokenType } from 'chevrotain';
import {
  allTokens,
  Arrow,
  Bang,
  BinaryOp,
  Colon,
  Comma,
  Dot,
  Ellipsis,
  Equals,
  EvalWord,
  Float,
  Identifier,
  Integer,
  isRealToken,
  Kw,
  LBrace,
  LBracket,
  LParen,
  Minus,
  Name,
  PrefixOp,
  RBrace,
  RBracket,
  RParen,
  StringLiteral,
  StringToken,
  UnterminatedString,
} from './lexer.js';
import { describeExpected, describeToken, parserMessages as messages } from './parserMessages.js';

/** Tokens an expression can start with. */
export const EXPRESSION_START: ReadonlySet<TokenType> = new Set([
  Integer, Float, StringToken, UnterminatedString, Kw['true']!, Kw['false']!, Kw['where']!, Identifier, EvalWord, LParen, LBracket, Minus, Bang,
]);

/** Stands in for the token that ends a let value in a Body; no rule accepts it (see LetStatement). */
const LetBarrier = createToken({ name: 'LetBarrier', pattern: Lexer.NA });

/** A problem found by a grammar action (Chevrotain only reports the ones it detects itself). */
export interface CustomError {
  readonly token: IToken;
  readonly previous: IToken;
  readonly message: string;
}

/**
 * The Chevrotain parser. Rule names are exactly the EBNF production names;
 * each rule carries its production as a comment. Built once per process.
 */
export class RecipeParser extends CstParser {
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
    if (isRealToken(t) && this.startsLine(t)) this.ptItemStarts.push(t.startOffset);
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

/** The one parser: it is expensive to build (grammar analysis) and cheap to reuse. */
export function recipeParser(): RecipeParser {
  parserInstance ??= new RecipeParser();
  return parserInstance;
}
