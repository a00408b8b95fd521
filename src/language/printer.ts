/**
 * The printer: `printExpression` and `printType` render one node on one line
 * (the checker quotes them in messages); `formatRecipe` renders a whole recipe
 * in the canonical layout that `ptr fmt` writes.
 *
 * Layout rules, in the order they are applied:
 * - 2-space indentation, canonical spacing (`a + b`, `f(a, b: 1)`, `x[:, -1]`,
 *   `f32[B, T, 3 * d]`, `-x`), numbers as written, strings re-escaped.
 * - A line that would pass 100 columns breaks its outermost call, list, tuple,
 *   parameter list or import list one element per line with a trailing comma,
 *   then each element the same way; a long operator chain breaks before its
 *   operators (after a binary `-` in a `let` of a braced body, where a line
 *   starting with `-` would end the let); a long `= expr` moves the expression
 *   to the next line when that makes it fit (tried first for `fn`/`forward`
 *   bodies, and for other `=` only when the expression is not a call or list,
 *   which instead stays on the `=` line and breaks inside).
 * - Consecutive `name = value` lines not separated by a blank line align their
 *   `=`: settings and submodules, params, and top-level declarations of one
 *   keyword (`model`, `dataset`, `tokenizer`); comment lines, lets and other
 *   items in between do not end such a run. Consecutive imports of modules
 *   (and, apart, of files) align their `{`. The padding is added after the
 *   line breaking is decided, so it never changes a break (and the output is a
 *   fixed point), at the price of an aligned line sometimes passing 100 columns.
 * - Top-level declarations are separated by one blank line, except adjacent
 *   one-line declarations the author wrote without one (a group of imports or
 *   datasets). Inside braces a run of blank lines becomes one; blank lines right
 *   after `{` or before `}` are dropped.
 *
 * Comments are consumed in source order by a cursor, so none is lost or
 * reordered: a comment on its own line leads the next item (declaration,
 * member, stage item, let, result); a comment after the end of an item on its
 * last line trails it; one after `{` trails the header; one before `}` stays at
 * the end of the block. A comment inside an item is kept next to the element
 * of the enclosing call/list/tuple/parameter/import list it sits beside (which
 * forces that list to break); where any comment of an item has no such place
 * (inside an operator chain, a type, a stage header), all of the item's inner
 * comments move, in order, to the lines before it.
 */
import { BINARY_PRECEDENCE, PREC_ADD, PREC_COMPARE, PREC_NEG, PREC_NOT, PREC_POSTFIX, PREC_POW, PREC_PRIMARY } from './precedence.js';
import type {
  Argument,
  BinaryOp,
  BlockDecl,
  BlockMember,
  Body,
  Comment,
  Declaration,
  DeployDecl,
  Expression,
  FnDecl,
  ForwardMember,
  ImportDecl,
  ImportName,
  Parameter,
  Pattern,
  Recipe,
  Setting,
  Span,
  StageDecl,
  StageItem,
  Subscript,
  TypeNode,
} from './ast.js';

/** Lines longer than this are broken where the grammar allows. */
const MAX_WIDTH = 100;
/** One indentation level. */
const INDENT = 2;

// ---------------------------------------------------------------- precedence

/** Binding strength of an expression form (see precedence.ts). */
function precedence(e: Expression): number {
  switch (e.kind) {
    case 'BinaryExpr':
      return BINARY_PRECEDENCE[e.op];
    case 'UnaryExpr':
      return e.op === '!' ? PREC_NOT : PREC_NEG;
    case 'CallExpr':
    case 'MemberExpr':
    case 'IndexExpr':
      return PREC_POSTFIX;
    default:
      return PREC_PRIMARY;
  }
}

/**
 * The least precedence an operand may have to be printed bare. Left-assoc
 * levels take their own level on the left and one more on the right;
 * comparisons do not chain; `**` is right-assoc with a Postfix on the left and a
 * Unary (which excludes `!`) on the right.
 */
function operandFloor(op: BinaryOp, side: 'left' | 'right'): number {
  const p = BINARY_PRECEDENCE[op];
  if (p === PREC_COMPARE) return PREC_ADD;
  if (p === PREC_POW) return side === 'left' ? PREC_POSTFIX : PREC_NEG;
  return side === 'left' ? p : p + 1;
}

/** `e` itself, or `e` in parentheses where its position needs them (trees built by code rather than parsed). */
function atLeast(e: Expression, floor: number): Expression {
  return precedence(e) >= floor ? e : { kind: 'ParenExpr', expression: e, loc: e.loc };
}

function unaryFloor(op: '-' | '!'): number {
  return op === '!' ? PREC_NOT : PREC_NEG;
}

// ---------------------------------------------------------------- one-line printing

/** Re-encodes a string value with the escapes the lexer accepts (`\" \\ \n \t \u{XXXX}`). */
export function quoteString(value: string): string {
  let out = '"';
  // for-of walks code points, and yields a lone surrogate as itself.
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029 || code === 0xfeff || (code >= 0xd800 && code <= 0xdfff)) {
      // Invisible or line-breaking characters would be unreadable (or unlexable) raw.
      out += `\\u{${code.toString(16).toUpperCase().padStart(4, '0')}}`;
    } else out += ch;
  }
  return `${out}"`;
}

/** An expression on one line, in canonical spacing, with parentheses only where the author wrote them or precedence needs them. */
export function printExpression(e: Expression): string {
  switch (e.kind) {
    case 'NumberLiteral':
      return e.raw !== '' ? e.raw : String(e.value);
    case 'StringLiteral':
      return quoteString(e.value);
    case 'BoolLiteral':
      return e.value ? 'true' : 'false';
    case 'NameExpr':
      return e.name;
    case 'BinaryExpr':
      return `${printExpression(atLeast(e.left, operandFloor(e.op, 'left')))} ${e.op} ${printExpression(atLeast(e.right, operandFloor(e.op, 'right')))}`;
    case 'UnaryExpr':
      return `${e.op}${printExpression(atLeast(e.operand, unaryFloor(e.op)))}`;
    case 'CallExpr':
      return `${printExpression(atLeast(e.callee, PREC_POSTFIX))}(${e.args.map(printArgument).join(', ')})`;
    case 'MemberExpr':
      return `${printExpression(atLeast(e.object, PREC_POSTFIX))}.${e.member.name}`;
    case 'IndexExpr':
      return `${printExpression(atLeast(e.object, PREC_POSTFIX))}${printSubscripts(e.subscripts)}`;
    case 'TupleExpr':
      // A one-element tuple needs its comma: `(a)` is a parenthesised expression.
      return e.elements.length === 1 ? `(${printExpression(e.elements[0]!)},)` : `(${e.elements.map(printExpression).join(', ')})`;
    case 'ListExpr':
      return `[${e.elements.map(printExpression).join(', ')}]`;
    case 'ParenExpr':
      return `(${printExpression(e.expression)})`;
    case 'ErrorExpr':
      return '<error>';
  }
}

function printArgument(a: Argument): string {
  return a.label ? `${a.label.name}: ${printExpression(a.value)}` : printExpression(a.value);
}

function printSubscript(s: Subscript): string {
  switch (s.kind) {
    case 'IndexSubscript':
      return printExpression(s.index);
    case 'SliceSubscript':
      return `${s.start ? printExpression(s.start) : ''}:${s.end ? printExpression(s.end) : ''}`;
    case 'EllipsisSubscript':
      return '...';
  }
}

function printSubscripts(subscripts: readonly Subscript[]): string {
  return `[${subscripts.map(printSubscript).join(', ')}]`;
}

/** A type on one line: `f32[B, T, 3 * d]`, `f32[]`, `dim`, `(f32, i64[B])`. */
export function printType(t: TypeNode): string {
  if (t.kind === 'TupleTypeNode') return `(${t.elements.map(printType).join(', ')})`;
  if (t.dims === null) return t.name.name;
  return `${t.name.name}[${t.dims.map((d) => (d.kind === 'EllipsisDim' ? '...' : printExpression(d))).join(', ')}]`;
}

/** A parameter on one line: `x`, `x: f32[B, d]`, `bias: bool = true`. */
export function printParameter(p: Parameter): string {
  let out = p.name.name;
  if (p.type) out += `: ${printType(p.type)}`;
  if (p.default) out += ` = ${printExpression(p.default)}`;
  return out;
}

function printPattern(p: Pattern): string {
  return p.kind === 'NamePattern' ? p.name.name : `(${p.elements.map(printPattern).join(', ')})`;
}

function printImportName(n: ImportName): string {
  return n.alias ? `${n.name.name} as ${n.alias.name}` : n.name.name;
}

function printWhere(where: readonly Expression[]): string {
  return where.length ? ` where ${where.map(printExpression).join(', ')}` : '';
}

function commentLine(c: Comment): string {
  // Trailing blanks are noise; the text itself is the author's and stays as written.
  return `#${c.text.trimEnd()}`;
}

// ---------------------------------------------------------------- comment placement

/** Anything with a source span. */
interface Located {
  readonly loc: Span;
}

/**
 * A comma-separated list that can break one element per line: the arguments of
 * a call, a list, a tuple, a parameter list, an import list. `start`/`end`
 * bound the source region whose comments may be placed beside its elements.
 */
interface Group {
  readonly key: object;
  readonly start: number;
  readonly end: number;
  readonly elements: readonly Located[];
}

/** Where the inner comments of one item go: beside elements of its groups. */
interface CommentPlan {
  readonly comments: readonly Comment[];
  readonly leading: Map<Located, Comment[]>;
  readonly trailing: Map<Located, Comment>;
  readonly dangling: Map<object, Comment[]>;
}

/** The groups whose elements can be laid out one per line, below an expression in a breakable position. */
function collectGroups(e: Expression, out: Group[]): void {
  switch (e.kind) {
    case 'CallExpr':
      out.push({ key: e, start: e.callee.loc.end, end: e.loc.end, elements: e.args });
      collectGroups(e.callee, out);
      for (const a of e.args) collectGroups(a.value, out);
      return;
    case 'ListExpr':
    case 'TupleExpr':
      out.push({ key: e, start: e.loc.start, end: e.loc.end, elements: e.elements });
      for (const x of e.elements) collectGroups(x, out);
      return;
    case 'BinaryExpr':
      collectGroups(e.left, out);
      collectGroups(e.right, out);
      return;
    case 'UnaryExpr':
      collectGroups(e.operand, out);
      return;
    case 'ParenExpr':
      collectGroups(e.expression, out);
      return;
    case 'MemberExpr':
    case 'IndexExpr':
      // Subscripts print on one line, so only the object can hold a breakable group.
      collectGroups(e.object, out);
      return;
    default:
      return;
  }
}

/**
 * Assigns every comment to a slot beside an element of the innermost group
 * around it, or returns null when one of them has no slot (it sits inside an
 * element that prints on one line): then all are hoisted, which keeps their order.
 */
function planComments(comments: readonly Comment[], groups: readonly Group[]): CommentPlan | null {
  const plan: CommentPlan = { comments, leading: new Map(), trailing: new Map(), dangling: new Map() };
  for (const c of comments) {
    const at = c.loc.start;
    let best: Group | null = null;
    for (const g of groups) {
      if (g.start <= at && at < g.end && (best === null || g.start > best.start || (g.start === best.start && g.end < best.end))) best = g;
    }
    if (best === null) return null;
    if (best.elements.some((el) => el.loc.start <= at && at < el.loc.end)) return null;
    const next = best.elements.findIndex((el) => el.loc.start > at);
    const prev = next === -1 ? best.elements[best.elements.length - 1] : best.elements[next - 1];
    if (prev && c.loc.line === prev.loc.endLine && !plan.trailing.has(prev)) plan.trailing.set(prev, c);
    else if (next !== -1) {
      const el = best.elements[next]!;
      plan.leading.set(el, [...(plan.leading.get(el) ?? []), c]);
    } else plan.dangling.set(best.key, [...(plan.dangling.get(best.key) ?? []), c]);
  }
  return plan;
}

// ---------------------------------------------------------------- line helpers

function spaces(n: number): string {
  return ' '.repeat(n);
}

/** The column after the last line of a rendering whose first line started at `col`. */
function endColumn(lines: readonly string[], col: number): number {
  return lines.length === 1 ? col + lines[0]!.length : lines[lines.length - 1]!.length;
}

/** Joins a rendering that ends mid-line with one that continues that line. */
function joinRenders(head: readonly string[], tail: readonly string[]): string[] {
  const out = [...head];
  out[out.length - 1] += tail[0]!;
  out.push(...tail.slice(1));
  return out;
}

function fitsAll(lines: readonly string[], col: number, suffix: number): boolean {
  return lines.every((l, i) => (i === 0 ? col + l.length : l.length) + (i === lines.length - 1 ? suffix : 0) <= MAX_WIDTH);
}

function isGroupExpr(e: Expression): boolean {
  return e.kind === 'CallExpr' || e.kind === 'ListExpr' || e.kind === 'TupleExpr';
}

/** One element of a group: how it prints flat, and how it renders when it has a line of its own. */
interface Element {
  readonly node: Located;
  readonly flat: string;
  render(col: number, indent: number, suffix: number): string[];
}

// ---------------------------------------------------------------- the formatter

/** An item of a sequence (declaration, member, stage item, statement) after rendering. */
interface RenderedItem {
  readonly loc: Span;
  readonly leading: readonly Comment[];
  /** Comments from inside the item that had no place in it; printed just before it. */
  readonly hoisted: readonly Comment[];
  /** Full lines, indented; the first line may still receive alignment padding. */
  readonly lines: string[];
  /** Alignment class and the width of the text before the padding point, if the item aligns. */
  readonly align: { readonly kind: string; readonly width: number } | null;
}

/** How to render one item of a sequence; `render` consumes the item's inner comments. */
interface SequenceEntry {
  readonly loc: Span;
  render(indent: number): Omit<RenderedItem, 'loc' | 'leading'>;
}

class Formatter {
  private readonly comments: readonly Comment[];
  private cursor = 0;
  /** Placement of the comments of the item being rendered; null: none placed. */
  private plan: CommentPlan | null = null;
  /** Placed comments written by the rendering in progress (a discarded attempt restores it). */
  private emitted = new Set<Comment>();
  /**
   * True while rendering the value of a `let` in a braced body. There the parser
   * ends the value at a line that starts with a binary '-' (that line is the
   * body's result, see parser.ts LetStatement), so a chain breaks after '-'.
   */
  private inBodyLet = false;
  private readonly lineStarts: number[] = [0];

  constructor(
    recipe: Recipe,
    private readonly text: string,
  ) {
    this.comments = [...recipe.comments].sort((a, b) => a.loc.start - b.loc.start);
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  format(recipe: Recipe): string {
    const lines = this.sequence(
      recipe.declarations.map((d) => ({ loc: d.loc, render: (indent: number) => this.declaration(d, indent) })),
      0,
      Number.POSITIVE_INFINITY,
      true,
    );
    return lines.length ? `${lines.join('\n')}\n` : '';
  }

  // -------------------------------------------------------------- comment cursor

  /** All comments not yet taken that start before `offset`, in source order. */
  private takeBefore(offset: number): Comment[] {
    const out: Comment[] = [];
    while (this.cursor < this.comments.length && this.comments[this.cursor]!.loc.start < offset) out.push(this.comments[this.cursor++]!);
    return out;
  }

  /** The next comment if it is on `line` and starts before `limit`: it trails that line. */
  private takeTrailing(line: number, limit: number): Comment | null {
    const c = this.comments[this.cursor];
    if (c && c.loc.line === line && c.loc.start < limit) {
      this.cursor++;
      return c;
    }
    return null;
  }

  /** Offset of the first `ch` at or after `from`, skipping comments and strings (header punctuation only). */
  private scanTo(from: number, ch: string): number {
    const t = this.text;
    let i = from;
    while (i < t.length) {
      const c = t[i]!;
      if (c === ch) return i;
      if (c === '#') {
        while (i < t.length && t[i] !== '\n' && t[i] !== '\r') i++;
      } else if (c === '"') {
        i++;
        while (i < t.length && t[i] !== '"' && t[i] !== '\n') i += t[i] === '\\' ? 2 : 1;
        i++;
      } else i++;
    }
    return t.length;
  }

  // -------------------------------------------------------------- sequences

  /**
   * Renders items (with their leading, hoisted and trailing comments), then the
   * comments left before `end`, deciding blank lines and alignment.
   */
  private sequence(entries: readonly SequenceEntry[], indent: number, end: number, topLevel: boolean): string[] {
    // 1. Render every item; this consumes the comments in source order.
    const items: RenderedItem[] = [];
    entries.forEach((entry, i) => {
      const leading = this.takeBefore(entry.loc.start);
      const r = entry.render(indent);
      const limit = i + 1 < entries.length ? entries[i + 1]!.loc.start : end;
      const trailing = this.takeTrailing(entry.loc.endLine, limit);
      if (trailing) r.lines[r.lines.length - 1] += `  ${commentLine(trailing)}`;
      items.push({ loc: entry.loc, leading, ...r });
    });
    const dangling = this.takeBefore(end);

    // 2. Blank lines: wherever the source had one (a run of them counts once),
    // plus, at the top level, before every declaration that is not a one-liner
    // following a one-liner. A blank line also ends an alignment run.
    const blankBefore = new Map<Comment | RenderedItem, boolean>();
    const runs: RenderedItem[][] = [[]];
    let prevLine: number | null = null;
    items.forEach((item, i) => {
      const prev = items[i - 1];
      let forced = topLevel && prev !== undefined && !(prev.lines.length === 1 && item.lines.length === 1);
      let broke = false;
      for (const thing of [...item.leading, item]) {
        const blank = prevLine !== null && (forced || thing.loc.line > prevLine + 1);
        blankBefore.set(thing, blank);
        broke ||= blank;
        forced = false;
        prevLine = thing === item ? item.loc.endLine : thing.loc.line;
      }
      if (broke) runs.push([]);
      runs[runs.length - 1]!.push(item);
    });
    for (const c of dangling) {
      blankBefore.set(c, prevLine !== null && c.loc.line > prevLine + 1);
      prevLine = c.loc.line;
    }

    // 3. Align within runs, 4. emit.
    for (const run of runs) this.align(run, indent);
    const pad = spaces(indent);
    const out: string[] = [];
    for (const item of items) {
      for (const c of item.leading) {
        if (blankBefore.get(c)) out.push('');
        out.push(pad + commentLine(c));
      }
      if (blankBefore.get(item)) out.push('');
      for (const c of item.hoisted) out.push(pad + commentLine(c));
      out.push(...item.lines);
    }
    for (const c of dangling) {
      if (blankBefore.get(c)) out.push('');
      out.push(pad + commentLine(c));
    }
    return out;
  }

  /** Pads the first line of each aligned item of a run so that its `=` (or `{`) lines up with the others of its kind. */
  private align(run: readonly RenderedItem[], indent: number): void {
    const widths = new Map<string, number>();
    for (const item of run) if (item.align) widths.set(item.align.kind, Math.max(widths.get(item.align.kind) ?? 0, item.align.width));
    for (const item of run) {
      if (!item.align) continue;
      const extra = widths.get(item.align.kind)! - item.align.width;
      if (extra === 0) continue;
      const line = item.lines[0]!;
      const at = indent + item.align.width;
      item.lines[0] = line.slice(0, at) + spaces(extra) + line.slice(at);
    }
  }

  // -------------------------------------------------------------- items with inner comments

  /**
   * Renders an item whose inner comments are those before `end`: placed beside
   * elements of `groups` when every one has a place, else hoisted. `render` may
   * run twice (the second time with nothing placed), so it must not consume comments.
   */
  private withComments(end: number, groups: readonly Group[], render: () => string[]): { hoisted: Comment[]; lines: string[] } {
    const inner = this.takeBefore(end);
    if (inner.length) {
      const plan = planComments(inner, groups);
      if (plan) {
        this.plan = plan;
        this.emitted = new Set();
        const lines = render();
        this.plan = null;
        // Every placed comment must have been written; if a layout path missed one, fall back to hoisting.
        if (inner.every((c) => this.emitted.has(c))) return { hoisted: [], lines };
      }
    }
    return { hoisted: inner, lines: render() };
  }

  /** Whether a placed comment lies in [start, end): such a region cannot print on one line. */
  private hasComments(start: number, end: number): boolean {
    return this.plan !== null && this.plan.comments.some((c) => start <= c.loc.start && c.loc.start < end);
  }

  // -------------------------------------------------------------- declarations

  private declaration(d: Declaration, indent: number): Omit<RenderedItem, 'loc' | 'leading'> {
    switch (d.kind) {
      case 'ImportDecl':
        return this.importDecl(d, indent);
      case 'TokenizerDecl':
      case 'ModelDecl':
      case 'DatasetDecl': {
        const keyword = d.kind === 'TokenizerDecl' ? 'tokenizer' : d.kind === 'ModelDecl' ? 'model' : 'dataset';
        const head = `${keyword} ${d.name.name}`;
        const groups: Group[] = [];
        collectGroups(d.value, groups);
        const r = this.withComments(d.loc.end, groups, () => this.assignment(`${head} = `, d.value, indent, '', false));
        // Only declarations of one keyword align: `model a =` beside `tokenizer b =` would leave wide gaps.
        return { ...r, align: { kind: keyword, width: head.length } };
      }
      case 'BlockDecl':
        return { ...this.blockDecl(d, indent), align: null };
      case 'FnDecl':
        return { ...this.fnDecl(d, indent), align: null };
      case 'StageDecl':
        return { ...this.stageDecl(d, indent), align: null };
      case 'DeployDecl':
        return { ...this.deployDecl(d, indent), align: null };
    }
  }

  private importDecl(d: ImportDecl, indent: number): Omit<RenderedItem, 'loc' | 'leading'> {
    const path = d.path.kind === 'StringLiteral' ? quoteString(d.path.value) : d.path.segments.map((s) => s.name).join('.');
    const head = `import ${path}`;
    const names = d.names;
    if (names === null) return { ...this.withComments(d.loc.end, [], () => [spaces(indent) + head]), align: null };
    const group: Group = { key: d, start: this.scanTo(d.path.loc.end, '{'), end: d.loc.end, elements: names };
    const r = this.withComments(d.loc.end, [group], () => {
      const elements = names.map((n) => this.flatElement(n, printImportName(n)));
      const list = this.group(group.key, group.start, group.end, '{', '}', elements, indent + head.length + 1, indent, 0, { spaced: true });
      return joinRenders([spaces(indent) + head + ' '], list);
    });
    // A file path is usually much longer than a module path; aligning the two would push every `{` far right.
    return { ...r, align: { kind: d.path.kind === 'StringLiteral' ? 'import-file' : 'import', width: head.length } };
  }

  /** The offset of the `{` that opens a declaration's body, searched from the end of its header. */
  private openBrace(afterHeader: Located): number {
    return this.scanTo(afterHeader.loc.end, '{');
  }

  /** The offset of the `}` that closes a node ending in one. */
  private closeBrace(node: Located): number {
    const at = this.text.lastIndexOf('}', node.loc.end - 1);
    return at >= node.loc.start ? at : node.loc.end;
  }

  /**
   * `head {`, the items one level in, `}`; `{}` when there is nothing inside.
   * The header's comments are taken first (through `header`), then a comment
   * after `{` on its line trails the header.
   */
  private braced(
    indent: number,
    open: number,
    close: number,
    header: () => { hoisted: Comment[]; lines: string[] },
    entries: readonly SequenceEntry[],
  ): { hoisted: Comment[]; lines: string[] } {
    const h = header();
    const lines = h.lines;
    const openLine = this.lineOf(open);
    const firstStart = entries.length ? entries[0]!.loc.start : close;
    const trailing = this.takeTrailing(openLine, firstStart);
    const body = this.sequence(entries, indent + INDENT, close, false);
    if (!trailing && body.length === 0) {
      lines[lines.length - 1] += ' {}';
      return { hoisted: h.hoisted, lines };
    }
    lines[lines.length - 1] += ' {';
    if (trailing) lines[lines.length - 1] += `  ${commentLine(trailing)}`;
    lines.push(...body, `${spaces(indent)}}`);
    return { hoisted: h.hoisted, lines };
  }

  /** The 1-based line of an offset, counting `\n` as `SourceFile` does (so it matches `Span.line`). */
  private lineOf(offset: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }

  /** `prefix(params)suffix` with the parameter list as a breakable group. */
  private paramsHeader(key: object, prefix: string, params: readonly Parameter[], suffix: string, indent: number, region: Group): string[] {
    const elements = params.map((p) => this.flatElement(p, printParameter(p)));
    const list = this.group(key, region.start, region.end, '(', ')', elements, indent + prefix.length, indent, suffix.length, {});
    const lines = joinRenders([spaces(indent) + prefix], list);
    lines[lines.length - 1] += suffix;
    return lines;
  }

  /** The group of a parameter list: from its `(` (searched after `from`) to its `)`. */
  private paramsGroup(key: object, from: number, params: readonly Parameter[]): Group {
    const open = this.scanTo(from, '(');
    const last = params[params.length - 1];
    const close = this.scanTo(last ? last.loc.end : open + 1, ')');
    return { key, start: open, end: close + 1, elements: params };
  }

  private blockDecl(d: BlockDecl, indent: number): { hoisted: Comment[]; lines: string[] } {
    const headerEnd = d.where[d.where.length - 1] ?? d.params[d.params.length - 1] ?? d.name;
    const open = this.openBrace(headerEnd);
    const close = this.closeBrace(d);
    const region = this.paramsGroup(d, d.name.loc.end, d.params);
    return this.braced(
      indent,
      open,
      close,
      () => this.withComments(open, [region], () => this.paramsHeader(d, `block ${d.name.name}`, d.params, printWhere(d.where), indent, region)),
      d.members.map((m) => ({ loc: m.loc, render: (i: number) => this.blockMember(m, i) })),
    );
  }

  private fnDecl(d: FnDecl, indent: number): { hoisted: Comment[]; lines: string[] } {
    const region = this.paramsGroup(d, d.name.loc.end, d.params);
    const rest = `${d.returnType ? ` -> ${printType(d.returnType)}` : ''}${printWhere(d.where)}`;
    return this.callable(d, `fn ${d.name.name}`, d.params, rest, d.body, indent, region, d.where[d.where.length - 1] ?? d.returnType ?? d.params[d.params.length - 1] ?? d.name);
  }

  /** A `fn` or `forward`: its header, then `= expr` or a braced body. */
  private callable(
    key: object,
    prefix: string,
    params: readonly Parameter[],
    rest: string,
    body: Body,
    indent: number,
    region: Group,
    headerEnd: Located,
  ): { hoisted: Comment[]; lines: string[] } {
    if (!body.braced) {
      const groups: Group[] = [region];
      collectGroups(body.result, groups);
      return this.withComments(body.loc.end, groups, () => {
        const header = this.paramsHeader(key, prefix, params, rest, indent, region);
        const last = header.pop()!;
        return [...header, ...this.assignment(`${last.slice(indent)} = `, body.result, indent, '', true)];
      });
    }
    const open = this.openBrace(headerEnd);
    const close = this.closeBrace(body);
    return this.braced(
      indent,
      open,
      close,
      () => this.withComments(open, [region], () => this.paramsHeader(key, prefix, params, rest, indent, region)),
      this.bodyEntries(body),
    );
  }

  private bodyEntries(body: Body): SequenceEntry[] {
    const entries: SequenceEntry[] = body.statements.map((s) => ({
      loc: s.loc,
      render: (indent: number) => {
        this.inBodyLet = true;
        try {
          return { ...this.letStatement(s.pattern, s.value, s.loc.end, indent), align: null };
        } finally {
          this.inBodyLet = false;
        }
      },
    }));
    entries.push({
      loc: body.result.loc,
      render: (indent: number) => {
        const groups: Group[] = [];
        collectGroups(body.result, groups);
        return { ...this.withComments(body.result.loc.end, groups, () => this.assignment('', body.result, indent, '', false)), align: null };
      },
    });
    return entries;
  }

  private letStatement(pattern: Pattern, value: Expression, end: number, indent: number): { hoisted: Comment[]; lines: string[] } {
    const groups: Group[] = [];
    collectGroups(value, groups);
    return this.withComments(end, groups, () => this.assignment(`let ${printPattern(pattern)} = `, value, indent, '', false));
  }

  private blockMember(m: BlockMember, indent: number): Omit<RenderedItem, 'loc' | 'leading'> {
    switch (m.kind) {
      case 'ParamMember': {
        const head = `param ${m.name.name}: ${printType(m.type)}`;
        const groups: Group[] = [];
        collectGroups(m.init, groups);
        const cond = m.condition ? ` if ${printExpression(m.condition)}` : '';
        const r = this.withComments(m.loc.end, groups, () => this.assignment(`${head} = `, m.init, indent, cond, false));
        return { ...r, align: { kind: 'param', width: head.length } };
      }
      case 'SubmoduleMember': {
        const groups: Group[] = [];
        collectGroups(m.value, groups);
        const cond = m.condition ? ` if ${printExpression(m.condition)}` : '';
        const r = this.withComments(m.loc.end, groups, () => this.assignment(`${m.name.name} = `, m.value, indent, cond, false));
        return { ...r, align: { kind: 'setting', width: m.name.name.length } };
      }
      case 'ForwardMember':
        return { ...this.forwardMember(m, indent), align: null };
    }
  }

  private forwardMember(m: ForwardMember, indent: number): { hoisted: Comment[]; lines: string[] } {
    const region = this.paramsGroup(m, m.loc.start, m.params);
    const rest = ` -> ${printType(m.returnType)}${printWhere(m.where)}`;
    return this.callable(m, 'forward', m.params, rest, m.body, indent, region, m.where[m.where.length - 1] ?? m.returnType);
  }

  private stageDecl(d: StageDecl, indent: number): { hoisted: Comment[]; lines: string[] } {
    const headerEnd: Located = d.after[d.after.length - 1] ?? d.dataset ?? d.target;
    const open = this.openBrace(headerEnd);
    const close = this.closeBrace(d);
    let head = `stage ${d.name.name}: ${d.stageKind.name} ${printExpression(d.target)}`;
    if (d.dataset) head += ` on ${printExpression(d.dataset)}`;
    if (d.after.length) head += ` after ${d.after.map((a) => a.name).join(', ')}`;
    return this.braced(
      indent,
      open,
      close,
      () => this.withComments(open, [], () => [spaces(indent) + head]),
      d.items.map((item) => ({ loc: item.loc, render: (i: number) => this.stageItem(item, i) })),
    );
  }

  private stageItem(item: StageItem, indent: number): Omit<RenderedItem, 'loc' | 'leading'> {
    switch (item.kind) {
      case 'Setting':
        return this.setting(item, indent);
      case 'LetStatement':
        return { ...this.letStatement(item.pattern, item.value, item.loc.end, indent), align: null };
      case 'EvalEvery': {
        const groups: Group[] = [];
        collectGroups(item.dataset, groups);
        const prefix = `eval every ${printExpression(item.every)} on `;
        return { ...this.withComments(item.loc.end, groups, () => this.assignment(prefix, item.dataset, indent, '', false)), align: null };
      }
    }
  }

  private setting(s: Setting, indent: number): Omit<RenderedItem, 'loc' | 'leading'> {
    const groups: Group[] = [];
    collectGroups(s.value, groups);
    const r = this.withComments(s.loc.end, groups, () => this.assignment(`${s.name.name} = `, s.value, indent, '', false));
    return { ...r, align: { kind: 'setting', width: s.name.name.length } };
  }

  private deployDecl(d: DeployDecl, indent: number): { hoisted: Comment[]; lines: string[] } {
    const open = this.openBrace(d.format);
    const close = this.closeBrace(d);
    const head = `deploy ${printExpression(d.target)} to ${d.format.name}`;
    return this.braced(
      indent,
      open,
      close,
      () => this.withComments(open, [], () => [spaces(indent) + head]),
      d.settings.map((s) => ({ loc: s.loc, render: (i: number) => this.setting(s, i) })),
    );
  }

  // -------------------------------------------------------------- expressions over lines

  /**
   * `prefix expr suffix` as full lines at `indent`. In order: one line; for a
   * prefix ending in `= `, the expression alone on the next line (first choice
   * for bodies, else only when the expression is not a list that can hug the
   * `=`); else the expression broken in place.
   */
  private assignment(prefix: string, e: Expression, indent: number, suffix: string, bodyStyle: boolean): string[] {
    const pad = spaces(indent);
    const col = indent + prefix.length;
    const commented = this.hasComments(e.loc.start, e.loc.end);
    const flat = printExpression(e);
    if (!commented && col + flat.length + suffix.length <= MAX_WIDTH) return [pad + prefix + flat + suffix];
    if (!commented && prefix.endsWith('= ') && (bodyStyle || !isGroupExpr(e)) && indent + INDENT + flat.length + suffix.length <= MAX_WIDTH) {
      return [pad + prefix.trimEnd(), spaces(indent + INDENT) + flat + suffix];
    }
    const lines = this.render(e, col, indent, suffix.length);
    lines[0] = pad + prefix + lines[0];
    lines[lines.length - 1] += suffix;
    return lines;
  }

  /**
   * An expression starting at column `col`, continuation lines at `indent`,
   * with `suffix` columns to follow it. The first line is returned without
   * indentation (it continues the caller's line), the others with it.
   */
  private render(e: Expression, col: number, indent: number, suffix: number): string[] {
    const commented = this.hasComments(e.loc.start, e.loc.end);
    if (!commented) {
      const flat = printExpression(e);
      if (col + flat.length + suffix <= MAX_WIDTH) return [flat];
    }
    switch (e.kind) {
      case 'CallExpr': {
        const callee = this.render(atLeast(e.callee, PREC_POSTFIX), col, indent, 1);
        const args = e.args.map((a) => this.argumentElement(a));
        return joinRenders(callee, this.group(e, e.callee.loc.end, e.loc.end, '(', ')', args, endColumn(callee, col), indent, suffix, {}));
      }
      case 'ListExpr':
        return this.group(e, e.loc.start, e.loc.end, '[', ']', e.elements.map((x) => this.expressionElement(x)), col, indent, suffix, {});
      case 'TupleExpr':
        return this.group(e, e.loc.start, e.loc.end, '(', ')', e.elements.map((x) => this.expressionElement(x)), col, indent, suffix, {
          singleComma: true,
        });
      case 'BinaryExpr':
        return this.binary(e, col, indent, suffix, commented);
      case 'UnaryExpr':
        return joinRenders([e.op], this.render(atLeast(e.operand, unaryFloor(e.op)), col + 1, indent, suffix));
      case 'ParenExpr':
        return joinRenders(joinRenders(['('], this.render(e.expression, col + 1, indent, suffix + 1)), [')']);
      case 'MemberExpr': {
        const tail = `.${e.member.name}`;
        return joinRenders(this.render(atLeast(e.object, PREC_POSTFIX), col, indent, suffix + tail.length), [tail]);
      }
      case 'IndexExpr': {
        // Subscripts stay on one line; when they cannot fit anyway, breaking the object would not help.
        const tail = printSubscripts(e.subscripts);
        const hopeless = indent + tail.length + suffix > MAX_WIDTH;
        return joinRenders(this.render(atLeast(e.object, PREC_POSTFIX), col, indent, hopeless ? 0 : suffix + tail.length), [tail]);
      }
      default:
        return [printExpression(e)];
    }
  }

  /**
   * An operator chain. Kept on one line (inner lists may still break) when
   * that fits; otherwise each further operand goes on its own line, one level
   * in, after its operator. A left-assoc chain of one level breaks as a whole.
   */
  private binary(e: Extract<Expression, { kind: 'BinaryExpr' }>, col: number, indent: number, suffix: number, commented: boolean): string[] {
    const level = BINARY_PRECEDENCE[e.op];
    const operands: Expression[] = [];
    const ops: BinaryOp[] = [];
    let cur: Expression = e;
    if (level === PREC_COMPARE || level === PREC_POW) {
      operands.push(atLeast(e.left, operandFloor(e.op, 'left')), atLeast(e.right, operandFloor(e.op, 'right')));
      ops.push(e.op);
    } else {
      while (cur.kind === 'BinaryExpr' && BINARY_PRECEDENCE[cur.op] === level) {
        operands.unshift(atLeast(cur.right, operandFloor(cur.op, 'right')));
        ops.unshift(cur.op);
        cur = cur.left;
      }
      operands.unshift(atLeast(cur, level));
    }
    const last = operands.length - 1;
    const inline = (): string[] => {
      let lines = this.render(operands[0]!, col, indent, 0);
      operands.slice(1).forEach((x, i) => {
        const head = joinRenders(lines, [` ${ops[i]} `]);
        lines = joinRenders(head, this.render(x, endColumn(head, col), indent, i + 1 === last ? suffix : 0));
      });
      return lines;
    };
    // `**` never breaks at its operator; a chain with comments tries one line first.
    if (level === PREC_POW) return inline();
    if (commented) {
      const before = new Set(this.emitted);
      const lines = inline();
      if (fitsAll(lines, col, suffix)) return lines;
      this.emitted = before;
    }
    const cont = indent + INDENT;
    const lines = this.render(operands[0]!, col, indent, 0);
    operands.slice(1).forEach((x, i) => {
      const op = ops[i]!;
      if (op === '-' && this.inBodyLet) {
        lines[lines.length - 1] += ` ${op}`;
        const r = this.render(x, cont, cont, i + 1 === last ? suffix : 0);
        r[0] = spaces(cont) + r[0];
        lines.push(...r);
        return;
      }
      const r = this.render(x, cont + op.length + 1, cont, i + 1 === last ? suffix : 0);
      r[0] = `${spaces(cont)}${op} ${r[0]}`;
      lines.push(...r);
    });
    return lines;
  }

  private expressionElement(x: Expression): Element {
    return { node: x, flat: printExpression(x), render: (col, indent, suffix) => this.render(x, col, indent, suffix) };
  }

  private argumentElement(a: Argument): Element {
    const label = a.label ? `${a.label.name}: ` : '';
    return {
      node: a,
      flat: printArgument(a),
      render: (col, indent, suffix) => joinRenders([label], this.render(a.value, col + label.length, indent, suffix)),
    };
  }

  private flatElement(node: Located, flat: string): Element {
    return { node, flat, render: () => [flat] };
  }

  /**
   * `open a, b close` on one line when it fits and holds no comment; else the
   * elements one per line, one level in, each with a comma and its comments.
   */
  private group(
    key: object,
    start: number,
    end: number,
    open: string,
    close: string,
    elements: readonly Element[],
    col: number,
    indent: number,
    suffix: number,
    options: { readonly spaced?: boolean; readonly singleComma?: boolean },
  ): string[] {
    const commented = this.hasComments(start, end);
    if (!commented) {
      const inner = elements.map((el) => el.flat).join(', ') + (options.singleComma && elements.length === 1 ? ',' : '');
      const flat = options.spaced && inner ? `${open} ${inner} ${close}` : `${open}${inner}${close}`;
      if (col + flat.length + suffix <= MAX_WIDTH || elements.length === 0) return [flat];
    }
    const plan = this.plan;
    const inner = indent + INDENT;
    const pad = spaces(inner);
    const lines = [open];
    for (const el of elements) {
      for (const c of plan?.leading.get(el.node) ?? []) {
        lines.push(pad + commentLine(c));
        this.emitted.add(c);
      }
      const r = el.render(inner, inner, 1);
      r[0] = pad + r[0];
      r[r.length - 1] += ',';
      const t = plan?.trailing.get(el.node);
      if (t) {
        r[r.length - 1] += `  ${commentLine(t)}`;
        this.emitted.add(t);
      }
      lines.push(...r);
    }
    for (const c of plan?.dangling.get(key) ?? []) {
      lines.push(pad + commentLine(c));
      this.emitted.add(c);
    }
    lines.push(spaces(indent) + close);
    return lines;
  }
}

/**
 * Formats a parsed recipe in the canonical layout, keeping every comment.
 * `sourceText` is the text `recipe` was parsed from: comment positions and the
 * author's blank lines are read against it. The result parses back to the same
 * tree (locations aside) and formatting it again changes nothing.
 */
export function formatRecipe(recipe: Recipe, sourceText: string): string {
  return new Formatter(recipe, sourceText).format(recipe);
}
