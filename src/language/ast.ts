/**
 * The abstract syntax tree of a recipe. Every node is a readonly record with a
 * `kind` tag and a source span `loc`. `childKeys` lists, for every kind, the
 * fields that hold child nodes, in source order; `visit` and `children` walk
 * any tree with that one table.
 */

/** A half-open range of source text: [start, end) offsets plus 1-based line/column of `start`. */
export interface Span {
  readonly file: string;
  readonly start: number;
  readonly end: number;
  readonly line: number;
  readonly column: number;
  readonly endLine: number;
  readonly endColumn: number;
}

export interface Identifier {
  readonly kind: 'Identifier';
  readonly name: string;
  readonly loc: Span;
}

// ---------------------------------------------------------------- expressions

export interface NumberLiteral {
  readonly kind: 'NumberLiteral';
  readonly value: number;
  /** True when written as an integer literal (no '.' and no exponent). */
  readonly isInteger: boolean;
  /** The text as written, kept so the formatter prints `3e-4`, not `0.0003`. */
  readonly raw: string;
  readonly loc: Span;
}

export interface StringLiteral {
  readonly kind: 'StringLiteral';
  readonly value: string;
  readonly loc: Span;
}

export interface BoolLiteral {
  readonly kind: 'BoolLiteral';
  readonly value: boolean;
  readonly loc: Span;
}

export interface NameExpr {
  readonly kind: 'NameExpr';
  readonly name: string;
  readonly loc: Span;
}

export type BinaryOp =
  | '||' | '&&'
  | '==' | '!=' | '<' | '<=' | '>' | '>='
  | '+' | '-'
  | '*' | '/' | '%' | '@'
  | '**';

export interface BinaryExpr {
  readonly kind: 'BinaryExpr';
  readonly op: BinaryOp;
  readonly left: Expression;
  readonly right: Expression;
  /** Span of the operator token itself, for messages like "matmul: ..." pointing at `@`. */
  readonly opLoc: Span;
  readonly loc: Span;
}

export interface UnaryExpr {
  readonly kind: 'UnaryExpr';
  readonly op: '-' | '!';
  readonly operand: Expression;
  readonly loc: Span;
}

export interface Argument {
  readonly kind: 'Argument';
  /** Present for named arguments `name: value`. */
  readonly label: Identifier | null;
  readonly value: Expression;
  readonly loc: Span;
}

export interface CallExpr {
  readonly kind: 'CallExpr';
  readonly callee: Expression;
  readonly args: readonly Argument[];
  readonly loc: Span;
}

export interface MemberExpr {
  readonly kind: 'MemberExpr';
  readonly object: Expression;
  readonly member: Identifier;
  readonly loc: Span;
}

/** One subscript inside `x[...]`: an index, a slice `a:b`, or an ellipsis `...`. */
export type Subscript = IndexSubscript | SliceSubscript | EllipsisSubscript;

export interface IndexSubscript {
  readonly kind: 'IndexSubscript';
  readonly index: Expression;
  readonly loc: Span;
}

export interface SliceSubscript {
  readonly kind: 'SliceSubscript';
  readonly start: Expression | null;
  readonly end: Expression | null;
  readonly loc: Span;
}

export interface EllipsisSubscript {
  readonly kind: 'EllipsisSubscript';
  readonly loc: Span;
}

export interface IndexExpr {
  readonly kind: 'IndexExpr';
  readonly object: Expression;
  readonly subscripts: readonly Subscript[];
  readonly loc: Span;
}

export interface TupleExpr {
  readonly kind: 'TupleExpr';
  readonly elements: readonly Expression[];
  readonly loc: Span;
}

export interface ListExpr {
  readonly kind: 'ListExpr';
  readonly elements: readonly Expression[];
  readonly loc: Span;
}

/** `( expr )` — kept so the formatter can reproduce the author's grouping. */
export interface ParenExpr {
  readonly kind: 'ParenExpr';
  readonly expression: Expression;
  readonly loc: Span;
}

/** Produced by error recovery where an expression was expected but none could be parsed. */
export interface ErrorExpr {
  readonly kind: 'ErrorExpr';
  readonly loc: Span;
}

export type Expression =
  | NumberLiteral
  | StringLiteral
  | BoolLiteral
  | NameExpr
  | BinaryExpr
  | UnaryExpr
  | CallExpr
  | MemberExpr
  | IndexExpr
  | TupleExpr
  | ListExpr
  | ParenExpr
  | ErrorExpr;

// ---------------------------------------------------------------- types

/** One dimension of a tensor type: `...` or a dimension expression (`B`, `64`, `3 * d`). */
export type DimNode = EllipsisDim | Expression;

export interface EllipsisDim {
  readonly kind: 'EllipsisDim';
  readonly loc: Span;
}

/** `f32[B, T, d]`, `i64[]`, or a plain named type such as `dim`, `bool`, `f32`. */
export interface TensorTypeNode {
  readonly kind: 'TensorTypeNode';
  readonly name: Identifier;
  /** null when written without brackets (`dim`, `f32`); [] for `f32[]`. */
  readonly dims: readonly DimNode[] | null;
  readonly loc: Span;
}

export interface TupleTypeNode {
  readonly kind: 'TupleTypeNode';
  readonly elements: readonly TypeNode[];
  readonly loc: Span;
}

export type TypeNode = TensorTypeNode | TupleTypeNode;

// ---------------------------------------------------------------- statements

export interface Parameter {
  readonly kind: 'Parameter';
  readonly name: Identifier;
  readonly type: TypeNode | null;
  readonly default: Expression | null;
  readonly loc: Span;
}

export type Pattern = NamePattern | TuplePattern;

export interface NamePattern {
  readonly kind: 'NamePattern';
  readonly name: Identifier;
  readonly loc: Span;
}

export interface TuplePattern {
  readonly kind: 'TuplePattern';
  readonly elements: readonly Pattern[];
  readonly loc: Span;
}

export interface LetStatement {
  readonly kind: 'LetStatement';
  readonly pattern: Pattern;
  readonly value: Expression;
  readonly loc: Span;
}

/** `= expr` (statements empty, `braced` false) or `{ let ...; result }`. */
export interface Body {
  readonly kind: 'Body';
  readonly braced: boolean;
  readonly statements: readonly LetStatement[];
  readonly result: Expression;
  readonly loc: Span;
}

// ---------------------------------------------------------------- block members

export interface ParamMember {
  readonly kind: 'ParamMember';
  readonly name: Identifier;
  readonly type: TypeNode;
  readonly init: Expression;
  readonly condition: Expression | null;
  readonly loc: Span;
}

export interface SubmoduleMember {
  readonly kind: 'SubmoduleMember';
  readonly name: Identifier;
  readonly value: Expression;
  readonly condition: Expression | null;
  readonly loc: Span;
}

export interface ForwardMember {
  readonly kind: 'ForwardMember';
  readonly params: readonly Parameter[];
  readonly returnType: TypeNode;
  readonly where: readonly Expression[];
  readonly body: Body;
  readonly loc: Span;
}

export type BlockMember = ParamMember | SubmoduleMember | ForwardMember;

// ---------------------------------------------------------------- declarations

export interface ImportName {
  readonly kind: 'ImportName';
  readonly name: Identifier;
  readonly alias: Identifier | null;
  readonly loc: Span;
}

export interface ImportDecl {
  readonly kind: 'ImportDecl';
  /** `std.nn` as ['std', 'nn'], or a relative path string. */
  readonly path: { readonly kind: 'ModulePath'; readonly segments: readonly Identifier[]; readonly loc: Span } | StringLiteral;
  /** null when no `{ ... }` list is given: the module's names are reachable as `nn.Linear`. */
  readonly names: readonly ImportName[] | null;
  readonly loc: Span;
}

export interface TokenizerDecl {
  readonly kind: 'TokenizerDecl';
  readonly name: Identifier;
  readonly value: Expression;
  readonly loc: Span;
}

export interface ModelDecl {
  readonly kind: 'ModelDecl';
  readonly name: Identifier;
  readonly value: Expression;
  readonly loc: Span;
}

export interface DatasetDecl {
  readonly kind: 'DatasetDecl';
  readonly name: Identifier;
  readonly value: Expression;
  readonly loc: Span;
}

export interface BlockDecl {
  readonly kind: 'BlockDecl';
  readonly name: Identifier;
  readonly params: readonly Parameter[];
  readonly where: readonly Expression[];
  readonly members: readonly BlockMember[];
  readonly loc: Span;
}

export interface FnDecl {
  readonly kind: 'FnDecl';
  readonly name: Identifier;
  readonly params: readonly Parameter[];
  readonly returnType: TypeNode | null;
  readonly where: readonly Expression[];
  readonly body: Body;
  readonly loc: Span;
}

export interface Setting {
  readonly kind: 'Setting';
  readonly name: Identifier;
  readonly value: Expression;
  readonly loc: Span;
}

export interface EvalEvery {
  readonly kind: 'EvalEvery';
  readonly every: Expression;
  readonly dataset: Expression;
  readonly loc: Span;
}

export type StageItem = Setting | LetStatement | EvalEvery;

export interface StageDecl {
  readonly kind: 'StageDecl';
  readonly name: Identifier;
  /** `train`, `rl`, `generate`, `prune`, `quantize`, `eval` — validated by the checker. */
  readonly stageKind: Identifier;
  readonly target: Expression;
  readonly dataset: Expression | null;
  readonly after: readonly Identifier[];
  readonly items: readonly StageItem[];
  readonly loc: Span;
}

export interface DeployDecl {
  readonly kind: 'DeployDecl';
  readonly target: Expression;
  /** `onnx`, `tensorrt`, `triton` — validated by the checker. */
  readonly format: Identifier;
  readonly settings: readonly Setting[];
  readonly loc: Span;
}

export type Declaration =
  | ImportDecl
  | TokenizerDecl
  | ModelDecl
  | DatasetDecl
  | BlockDecl
  | FnDecl
  | StageDecl
  | DeployDecl;

export interface Comment {
  /** The text after `#`, without the line break. */
  readonly text: string;
  readonly loc: Span;
}

export interface Recipe {
  readonly kind: 'Recipe';
  readonly declarations: readonly Declaration[];
  readonly comments: readonly Comment[];
  readonly loc: Span;
}

export type Node =
  | Recipe
  | Declaration
  | BlockMember
  | StageItem
  | Expression
  | Argument
  | Subscript
  | TypeNode
  | EllipsisDim
  | Parameter
  | Pattern
  | Body
  | ImportName
  | Identifier
  | ImportDecl['path'];

export type NodeKind = Node['kind'];

/** For every node kind, the fields holding child nodes, in source order. */
export const childKeys: { readonly [K in NodeKind]: readonly string[] } = {
  Recipe: ['declarations'],
  ImportDecl: ['path', 'names'],
  ModulePath: ['segments'],
  ImportName: ['name', 'alias'],
  TokenizerDecl: ['name', 'value'],
  ModelDecl: ['name', 'value'],
  DatasetDecl: ['name', 'value'],
  BlockDecl: ['name', 'params', 'where', 'members'],
  FnDecl: ['name', 'params', 'returnType', 'where', 'body'],
  StageDecl: ['name', 'stageKind', 'target', 'dataset', 'after', 'items'],
  DeployDecl: ['target', 'format', 'settings'],
  ParamMember: ['name', 'type', 'init', 'condition'],
  SubmoduleMember: ['name', 'value', 'condition'],
  ForwardMember: ['params', 'returnType', 'where', 'body'],
  Setting: ['name', 'value'],
  EvalEvery: ['every', 'dataset'],
  LetStatement: ['pattern', 'value'],
  Body: ['statements', 'result'],
  Parameter: ['name', 'type', 'default'],
  NamePattern: ['name'],
  TuplePattern: ['elements'],
  TensorTypeNode: ['name', 'dims'],
  TupleTypeNode: ['elements'],
  EllipsisDim: [],
  Identifier: [],
  NumberLiteral: [],
  StringLiteral: [],
  BoolLiteral: [],
  NameExpr: [],
  BinaryExpr: ['left', 'right'],
  UnaryExpr: ['operand'],
  CallExpr: ['callee', 'args'],
  Argument: ['label', 'value'],
  MemberExpr: ['object', 'member'],
  IndexExpr: ['object', 'subscripts'],
  IndexSubscript: ['index'],
  SliceSubscript: ['start', 'end'],
  EllipsisSubscript: [],
  TupleExpr: ['elements'],
  ListExpr: ['elements'],
  ParenExpr: ['expression'],
  ErrorExpr: [],
};

/** The direct children of a node, in source order. */
export function children(node: Node): Node[] {
  const out: Node[] = [];
  const record = node as unknown as Record<string, unknown>;
  for (const key of childKeys[node.kind]) {
    const value = record[key];
    if (Array.isArray(value)) out.push(...(value as Node[]));
    else if (value !== null && value !== undefined) out.push(value as Node);
  }
  return out;
}

/** Depth-first pre-order walk; return `false` from `enter` to skip a node's children. */
export function visit(node: Node, enter: (node: Node, parent: Node | null) => boolean | void, parent: Node | null = null): void {
  if (enter(node, parent) === false) return;
  for (const child of children(node)) visit(child, enter, node);
}

/** A copy of the tree as plain data without source spans: used to compare trees in round-trip tests. */
export function stripLocations(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripLocations);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'loc' || key === 'opLoc' || key === 'comments') continue;
    out[key] = stripLocations(value);
  }
  return out;
}
