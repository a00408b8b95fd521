/**
 * CST → AST, in one place: `AstBuilder` turns each declaration's Chevrotain
 * CST into the readonly AST of ast.ts, stamping every node's `loc`, and
 * `Climber` groups the flat operator rows by precedence. Missing pieces (from
 * error recovery) become empty names and `ErrorExpr`.
 */
import type { CstElement, CstNode, IToken } from 'chevrotain';
import type * as A from './ast.js';
import { joinSpans, type DiagnosticBag, type SourceFile } from './diagnostics.js';
import { Bang, isRealToken, tokenEnd } from './lexer.js';
import { BINARY_PRECEDENCE, PREC_AND, PREC_COMPARE, PREC_NEG, PREC_NOT, PREC_OR, PREC_POW } from './precedence.js';

/** Expression trees deeper than this (long operator chains) become ErrorExpr, so later phases may recurse freely. */
export const MAX_EXPRESSION_DEPTH = 256;

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
export class AstBuilder {
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
    if (isRealToken(t)) {
      this.pos = tokenEnd(t);
      return this.source.span(t.startOffset, this.pos);
    }
    return this.source.span(this.pos, this.pos);
  }

  /** Moves `pos` past a token the AST does not keep (`=`, `:`), so a missing piece after it is placed after it. */
  private skip(t: IToken | undefined): void {
    if (isRealToken(t)) this.pos = tokenEnd(t);
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
    return { kind: 'Identifier', name: isRealToken(t) ? t.image : '', loc: this.tokenSpan(t) };
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
    if (id) return isRealToken(id) ? { kind: 'NameExpr', name: id.image, loc: this.tokenSpan(id) } : this.errorExpr();
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
