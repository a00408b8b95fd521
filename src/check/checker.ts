/**
 * The expression checker: infers the type of every expression, instantiates
 * blocks into models, calls functions and models, and evaluates compile-time
 * constants. Errors inside an instantiation carry notes naming the chain of
 * instantiations that led there ("in Transformer(...) at recipe:7:16").
 */
import type {
  Argument,
  BinaryExpr,
  BlockDecl,
  Body,
  CallExpr,
  Expression,
  FnDecl,
  IndexExpr,
  MemberExpr,
  Parameter,
  Pattern,
  SliceSubscript,
  Span,
  StageDecl,
  TypeNode,
  ForwardMember,
} from '../language/ast.js';
import { didYouMean, type DiagnosticBag, type DiagnosticOptions, type RelatedInfo } from '../language/diagnostics.js';
import { printExpression } from '../language/printer.js';
import { BUILTINS, CONSTANTS, dtypeOf, type BoundArg, type BuiltinServices, type CallSite, type ParamSpec } from './builtins.js';
import {
  addDims,
  constDim,
  constValue,
  dimsEqual,
  dimSymbols,
  divDims,
  formatDim,
  isInvalidConstant,
  modDims,
  mulDims,
  negDim,
  solveFor,
  subDims,
  substituteDim,
  symDim,
  type Dim,
} from './dims.js';
import type { ModuleInfo, NamedDeclaration } from './modules.js';
import { Scope } from './scope.js';
import { broadcastShapes, elementCount, isShapeError, matmulShape, sliceLength } from './shapes.js';
import {
  DTYPES,
  ERROR,
  NONE,
  describeKind,
  formatShape,
  formatType,
  intConst,
  numberConst,
  shapesEqual,
  tensor,
  type CheckpointRef,
  type ForwardSignature,
  type ModelInstance,
  type ModelMember,
  type Shape,
  type TensorTy,
  type Ty,
} from './types.js';

/** Codes the parser reports. */
const SYNTAX_CODES = new Set(['syntax-error', 'unterminated-string', 'invalid-character', 'invalid-escape']);

/** One step of the instantiation chain, for notes. */
interface Frame {
  readonly span: Span;
  readonly what: string;
}

const MAX_DEPTH = 32;

/** Shortened source text of an expression for messages. */
export function exprText(e: Expression): string {
  const text = printExpression(e);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

export class Checker {
  private readonly stack: Frame[] = [];
  private readonly declTypes = new Map<NamedDeclaration, Ty>();
  private readonly inProgress = new Set<NamedDeclaration>();
  private readonly instances = new Map<BlockDecl, Map<string, ModelInstance>>();
  private readonly fnResults = new Map<FnDecl, Map<string, Ty>>();
  /** Blocks and functions whose generic check reported errors: their instantiations stay quiet. */
  readonly failedGeneric = new Set<BlockDecl | FnDecl>();
  private readonly genericChecked = new Set<BlockDecl>();
  /** Each block instantiated with symbolic arguments, for `ptr types`. */
  readonly genericInstances = new Map<BlockDecl, ModelInstance>();
  /** Set while checking a block or fn generically (with symbolic arguments). */
  private generic = false;
  /** While positive, reports are dropped: re-checks of code whose generic check already failed. */
  private muted = 0;

  constructor(
    readonly bag: DiagnosticBag,
    readonly services: BuiltinServices,
  ) {}

  // ------------------------------------------------------------ reporting

  /**
   * Reports a diagnostic. Inside an instantiation, notes name the chain; when
   * the error lies in another file than the outermost call (the standard
   * library, say), the error moves to that call and the inner place becomes a note.
   */
  report(code: string, message: string, span: Span, options: DiagnosticOptions = {}): void {
    if (this.muted > 0) return;
    // On a line the parser already flagged, anything else is most likely a consequence of that error.
    if (this.syntaxErrorOnLines(span)) return;
    if (this.stack.length === 0) {
      this.bag.report(code, message, span, options);
      return;
    }
    const chain: RelatedInfo[] = [...this.stack].reverse().map((f) => ({ message: `in ${f.what}`, span: f.span }));
    const outer = this.stack[0]!;
    if (outer.span.file !== span.file) {
      this.bag.report(code, message, outer.span, {
        ...options,
        related: [...(options.related ?? []), { message: 'the error is here', span }, ...chain.slice(0, -1)],
      });
      return;
    }
    this.bag.report(code, message, span, { ...options, related: [...(options.related ?? []), ...chain] });
  }

  /**
   * True when the parser already reported an error inside this span: checks
   * that report something *missing* stay quiet there, since the missing part is
   * most likely what the syntax error swallowed.
   */
  hasSyntaxErrorIn(span: Span): boolean {
    return this.bag.items.some((d) => d.span.file === span.file && d.span.start >= span.start && d.span.start <= span.end && SYNTAX_CODES.has(d.code));
  }

  private syntaxErrorOnLines(span: Span): boolean {
    return this.bag.items.some((d) => d.span.file === span.file && SYNTAX_CODES.has(d.code) && d.span.line >= span.line && d.span.line <= span.endLine);
  }

  private withFrame<T>(frame: Frame, body: () => T): T | null {
    if (this.stack.length >= MAX_DEPTH) {
      this.report('recursion-limit', `instantiation is nested more than ${MAX_DEPTH} deep (is ${frame.what} recursive?)`, frame.span);
      return null;
    }
    this.stack.push(frame);
    try {
      return body();
    } finally {
      this.stack.pop();
    }
  }

  // ------------------------------------------------------------ names

  /** The type of a recipe-level declaration, computed once (order independent, cycles reported). */
  declType(module: ModuleInfo, decl: NamedDeclaration): Ty {
    const cached = this.declTypes.get(decl);
    if (cached) return cached;
    if (this.inProgress.has(decl)) {
      this.bag.report('cyclic-definition', `'${decl.name.name}' is defined in terms of itself`, decl.name.loc);
      return ERROR;
    }
    this.inProgress.add(decl);
    const saved = this.stack.splice(0);
    const wasGeneric = this.generic;
    this.generic = false;
    let ty: Ty;
    try {
      ty = this.computeDeclType(module, decl);
    } finally {
      this.stack.push(...saved);
      this.generic = wasGeneric;
      this.inProgress.delete(decl);
    }
    this.declTypes.set(decl, ty);
    return ty;
  }

  private computeDeclType(module: ModuleInfo, decl: NamedDeclaration): Ty {
    const scope = new Scope(module);
    switch (decl.kind) {
      case 'BlockDecl':
        return { k: 'block', decl, module: module.path };
      case 'FnDecl':
        return { k: 'fn', decl, module: module.path };
      case 'StageDecl':
        return { k: 'stage', decl };
      case 'TokenizerDecl': {
        const t = this.infer(decl.value, scope);
        if (t.k !== 'tokenizer' && t.k !== 'error') {
          this.report('type-mismatch', `tokenizer '${decl.name.name}' must be a tokenizer such as chars(...), bytes() or hf("tokenizer.json"), but this is ${describeKind(t)}`, decl.value.loc);
          return ERROR;
        }
        return t;
      }
      case 'DatasetDecl': {
        const t = this.infer(decl.value, scope);
        if (t.k === 'dataset') return { ...t, display: `${t.display} '${decl.name.name}'`, decl };
        if (t.k !== 'error') this.report('type-mismatch', `dataset '${decl.name.name}' must be a dataset such as text(...) or jsonl(...), but this is ${describeKind(t)}`, decl.value.loc);
        return ERROR;
      }
      case 'ModelDecl': {
        const t = this.infer(decl.value, scope);
        if (t.k === 'model') return { k: 'model', model: { ...t.model, origin: { model: decl.name.name, checkpoint: t.model.origin.checkpoint } } };
        if (t.k === 'block') {
          this.report('type-mismatch', `model '${decl.name.name}' needs arguments: ${decl.value.loc ? exprText(decl.value) : ''}(...) instantiates the block`, decl.value.loc);
          return ERROR;
        }
        if (t.k !== 'error') this.report('type-mismatch', `model '${decl.name.name}' must be a model (an instantiated block), but this is ${describeKind(t)}`, decl.value.loc);
        return ERROR;
      }
    }
  }

  /** Looks a name up: locals, then the module's declarations and imports, then built-ins. */
  lookup(name: string, span: Span, scope: Scope): Ty {
    const local = scope.local(name);
    if (local !== undefined) return local;
    const module = scope.module;
    const decl = module.decls.get(name);
    if (decl) return this.noteModelUse(this.declType(module, decl), span, scope);
    const imported = module.imports.get(name);
    if (imported) {
      if (imported.kind === 'unresolved') return ERROR;
      if (imported.kind === 'namespace') return { k: 'module', path: imported.module.path };
      const target = imported.module.decls.get(imported.name);
      return target ? this.noteModelUse(this.declType(imported.module, target), span, scope) : ERROR;
    }
    const stage = module.stages.get(name);
    if (stage) return { k: 'stage', decl: stage };
    if (name in BUILTINS) return { k: 'builtin', name };
    if (name in CONSTANTS) return { k: 'float', value: CONSTANTS[name]! };
    const dtype = dtypeOf(name);
    if (dtype) return { k: 'dtype', dtype };
    if (this.declaredInBrokenText(name, module)) return ERROR;
    const candidates = [...scope.localNames(), ...module.decls.keys(), ...module.imports.keys(), ...Object.keys(BUILTINS)];
    this.report('unknown-name', `unknown name '${name}'`, span, { hint: didYouMean(name, candidates) });
    return ERROR;
  }

  /**
   * After a syntax error, a declaration the parser had to skip leaves its name
   * undefined; its uses are not reported again when the file's text declares
   * the name (`modle policy = ...`, `tok = chars(...)`).
   */
  private declaredInBrokenText(name: string, module: ModuleInfo): boolean {
    if (!this.bag.items.some((d) => d.span.file === module.path && SYNTAX_CODES.has(d.code))) return false;
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(`(^|\\n)[^\\S\\n]*(\\w+[^\\S\\n]+)?${escaped}[^\\S\\n]*[=(:]`).test(module.source.text);
  }

  private noteModelUse(t: Ty, span: Span, scope: Scope): Ty {
    if (t.k === 'model') for (const c of t.model.checkpoints) scope.recordCheckpoint(c, span);
    if (t.k === 'dataset' && t.producedBy) scope.recordStage(t.producedBy, span, `reads the dataset generated by stage '${t.producedBy}'`);
    return t;
  }

  // ------------------------------------------------------------ expressions

  infer(e: Expression, scope: Scope): Ty {
    switch (e.kind) {
      case 'NumberLiteral':
        return e.isInteger ? { k: 'int', value: constDim(e.value) } : { k: 'float', value: e.value };
      case 'StringLiteral':
        // An unterminated string was reported by the lexer; its text is not what the author meant.
        return this.hasSyntaxErrorIn(e.loc) ? ERROR : { k: 'str', value: e.value };
      case 'BoolLiteral':
        return { k: 'bool', value: e.value };
      case 'NameExpr':
        return this.lookup(e.name, e.loc, scope);
      case 'ParenExpr':
        return this.infer(e.expression, scope);
      case 'ErrorExpr':
        return ERROR;
      case 'TupleExpr':
        return { k: 'tuple', elements: e.elements.map((x) => this.infer(x, scope)) };
      case 'ListExpr':
        return { k: 'list', elements: e.elements.map((x) => this.infer(x, scope)) };
      case 'UnaryExpr':
        return this.inferUnary(e.op, this.infer(e.operand, scope), e.loc);
      case 'BinaryExpr':
        return this.inferBinary(e, scope);
      case 'CallExpr':
        return this.inferCall(e, scope);
      case 'MemberExpr':
        return this.inferMember(e, scope);
      case 'IndexExpr':
        return this.inferIndex(e, scope);
    }
  }

  private inferUnary(op: '-' | '!', t: Ty, span: Span): Ty {
    if (t.k === 'error') return t;
    if (op === '-') {
      if (t.k === 'int') return { k: 'int', value: t.value && negDim(t.value) };
      if (t.k === 'float') return { k: 'float', value: t.value === null ? null : -t.value };
      if (t.k === 'tensor' && t.dtype !== 'bool' && t.dtype !== 'str') return t;
      if (t.k === 'none') return t;
    } else {
      if (t.k === 'bool') return { k: 'bool', value: t.value === null ? null : !t.value };
      if (t.k === 'tensor' && t.dtype === 'bool') return t;
    }
    this.report('type-mismatch', `'${op}' cannot be applied to ${describeKind(t)}`, span);
    return ERROR;
  }

  private inferBinary(e: BinaryExpr, scope: Scope): Ty {
    if (e.op === '@') {
      const left = this.infer(e.left, scope);
      if (left.k === 'model') return this.checkpointRef(e, left.model, scope);
      const right = this.infer(e.right, scope);
      if (left.k === 'error' || right.k === 'error') return ERROR;
      if (left.k === 'tensor' && right.k === 'tensor') {
        const s = matmulShape(left.shape, right.shape, () => [exprText(e.left), exprText(e.right)]);
        if (isShapeError(s)) {
          this.report(s.code, s.message, e.opLoc);
          return ERROR;
        }
        if (left.dtype !== right.dtype) return this.dtypeError('matmul', left, right, e.opLoc);
        return { k: 'tensor', dtype: left.dtype, shape: s };
      }
      this.report('type-mismatch', `'@' needs two tensors (matmul) or a model and a stage (checkpoint), but got ${describeKind(left)} and ${describeKind(right)}`, e.opLoc);
      return ERROR;
    }
    const left = this.infer(e.left, scope);
    const right = this.infer(e.right, scope);
    return this.binaryOp(e.op, left, right, e);
  }

  private dtypeError(what: string, a: TensorTy, b: TensorTy, span: Span): Ty {
    this.report('dtype-mismatch', `${what}: dtypes differ: ${formatType(a)} and ${formatType(b)}`, span, {
      hint: `convert one side with cast(x, ${a.dtype})`,
    });
    return ERROR;
  }

  private binaryOp(op: BinaryExpr['op'], left: Ty, right: Ty, e: BinaryExpr): Ty {
    if (left.k === 'error' || right.k === 'error') return ERROR;
    // An absent optional member is the identity: `x @ w + b` without bias is `x @ w`.
    if (left.k === 'none' || right.k === 'none') {
      if (['+', '-', '*'].includes(op)) return left.k === 'none' ? (op === '-' ? this.inferUnary('-', right, e.loc) : right) : left;
    }
    if (op === '&&' || op === '||') {
      if (left.k === 'bool' && right.k === 'bool') {
        const v = left.value === null || right.value === null ? null : op === '&&' ? left.value && right.value : left.value || right.value;
        return { k: 'bool', value: v };
      }
      if (left.k === 'tensor' && right.k === 'tensor' && left.dtype === 'bool' && right.dtype === 'bool') return this.broadcastPair(left, right, 'bool', e);
      this.report('type-mismatch', `'${op}' needs booleans, but got ${describeKind(left)} and ${describeKind(right)}`, e.opLoc);
      return ERROR;
    }
    if (left.k === 'tensor' || right.k === 'tensor') return this.tensorBinary(op, left, right, e);
    if (left.k === 'int' && right.k === 'int') return this.intBinary(op, left.value, right.value, e);
    if ((left.k === 'int' || left.k === 'float') && (right.k === 'int' || right.k === 'float')) {
      return this.floatBinary(op, numberConst(left), numberConst(right), e);
    }
    if (left.k === 'str' && right.k === 'str' && (op === '==' || op === '!=' || op === '+')) {
      if (op === '+') return { k: 'str', value: left.value !== null && right.value !== null ? left.value + right.value : null };
      const eq = left.value === null || right.value === null ? null : left.value === right.value;
      return { k: 'bool', value: eq === null ? null : op === '==' ? eq : !eq };
    }
    if (left.k === 'bool' && right.k === 'bool' && (op === '==' || op === '!=')) {
      const eq = left.value === null || right.value === null ? null : left.value === right.value;
      return { k: 'bool', value: eq === null ? null : op === '==' ? eq : !eq };
    }
    this.report('type-mismatch', `'${op}' cannot combine ${describeKind(left)} and ${describeKind(right)}`, e.opLoc);
    return ERROR;
  }

  private intBinary(op: BinaryExpr['op'], a: Dim | null, b: Dim | null, e: BinaryExpr): Ty {
    const int = (value: Dim | null): Ty => ({ k: 'int', value });
    const cmp = (fn: (d: number) => boolean, eqIfSame: boolean | null): Ty => {
      if (!a || !b) return { k: 'bool', value: null };
      const diff = subDims(a, b);
      const c = constValue(diff);
      if (c !== null) return { k: 'bool', value: fn(c) };
      return { k: 'bool', value: dimsEqual(a, b) ? eqIfSame : null };
    };
    switch (op) {
      case '+':
        return int(a && b && addDims(a, b));
      case '-':
        return int(a && b && subDims(a, b));
      case '*':
        return int(a && b && mulDims(a, b));
      case '/': {
        if (!a || !b) return int(null);
        // Exact (rational) division: `d / 3` with d = 10 stays 10/3 and is refused where a dimension is needed.
        const q = divDims(a, b);
        return q ? int(q) : this.divisionByZero(e);
      }
      case '%': {
        if (!a || !b) return int(null);
        const m = modDims(a, b);
        return m ? int(m) : this.divisionByZero(e);
      }
      case '**': {
        const x = a && constValue(a);
        const y = b && constValue(b);
        if (x === null || y === null || x === undefined || y === undefined) return y !== null && y !== undefined && y >= 0 && a ? int(Array.from({ length: y }).reduce<Dim>((acc) => mulDims(acc, a), constDim(1))) : int(null);
        return y >= 0 ? int(constDim(x ** y)) : { k: 'float', value: x ** y };
      }
      case '==':
        return cmp((d) => d === 0, true);
      case '!=':
        return cmp((d) => d !== 0, false);
      case '<':
        return cmp((d) => d < 0, false);
      case '<=':
        return cmp((d) => d <= 0, true);
      case '>':
        return cmp((d) => d > 0, false);
      case '>=':
        return cmp((d) => d >= 0, true);
      default:
        return ERROR;
    }
  }

  private divisionByZero(e: BinaryExpr): Ty {
    this.report('division-by-zero', `division by zero in ${exprText(e)}`, e.opLoc);
    return ERROR;
  }

  private floatBinary(op: BinaryExpr['op'], a: number | null, b: number | null, e: BinaryExpr): Ty {
    const known = a !== null && b !== null;
    const num = (f: (x: number, y: number) => number): Ty => ({ k: 'float', value: known ? f(a, b) : null });
    const bool = (f: (x: number, y: number) => boolean): Ty => ({ k: 'bool', value: known ? f(a, b) : null });
    switch (op) {
      case '+':
        return num((x, y) => x + y);
      case '-':
        return num((x, y) => x - y);
      case '*':
        return num((x, y) => x * y);
      case '/':
        if (b === 0) return this.divisionByZero(e);
        return num((x, y) => x / y);
      case '%':
        return num((x, y) => x % y);
      case '**':
        return num((x, y) => x ** y);
      case '==':
        return bool((x, y) => x === y);
      case '!=':
        return bool((x, y) => x !== y);
      case '<':
        return bool((x, y) => x < y);
      case '<=':
        return bool((x, y) => x <= y);
      case '>':
        return bool((x, y) => x > y);
      case '>=':
        return bool((x, y) => x >= y);
      default:
        return ERROR;
    }
  }

  private tensorBinary(op: BinaryExpr['op'], left: Ty, right: Ty, e: BinaryExpr): Ty {
    const asTensor = (t: Ty, other: TensorTy | null): TensorTy | null => {
      if (t.k === 'tensor') return t;
      // Numeric constants adopt the tensor's dtype (weak typing, as in JAX).
      if ((t.k === 'int' || t.k === 'float') && other) return tensor(other.dtype, []);
      return null;
    };
    const a = asTensor(left, right.k === 'tensor' ? right : null);
    const b = asTensor(right, left.k === 'tensor' ? left : null);
    if (!a || !b) {
      this.report('type-mismatch', `'${op}' cannot combine ${describeKind(left)} and ${describeKind(right)}`, e.opLoc);
      return ERROR;
    }
    if (a.dtype !== b.dtype) return this.dtypeError(`'${op}'`, a, b, e.opLoc);
    const comparison = ['==', '!=', '<', '<=', '>', '>='].includes(op);
    if (!comparison && (a.dtype === 'bool' || a.dtype === 'str')) {
      this.report('type-mismatch', `'${op}' is not defined for ${a.dtype} tensors`, e.opLoc);
      return ERROR;
    }
    return this.broadcastPair(a, b, comparison ? 'bool' : a.dtype, e);
  }

  private broadcastPair(a: TensorTy, b: TensorTy, dtype: TensorTy['dtype'], e: BinaryExpr): Ty {
    const s = broadcastShapes(a.shape, b.shape);
    if (isShapeError(s)) {
      this.report(s.code, `'${e.op}': ${s.message} (${exprText(e.left)} is ${formatType(a)}, ${exprText(e.right)} is ${formatType(b)})`, e.opLoc);
      return ERROR;
    }
    return { k: 'tensor', dtype, shape: s };
  }

  /** `model @ stage`: the weights of a model after a stage. */
  private checkpointRef(e: BinaryExpr, model: ModelInstance, scope: Scope): Ty {
    const modelName = model.origin.model;
    if (e.left.kind !== 'NameExpr' || modelName !== e.left.name) {
      this.report('bad-checkpoint', `a checkpoint is written 'model @ stage' with a model declared by 'model NAME = ...', but '${exprText(e.left)}' is ${describeKind({ k: 'model', model })}`, e.left.loc);
      return ERROR;
    }
    if (e.right.kind !== 'NameExpr') {
      this.report('bad-checkpoint', `the right side of '${modelName} @ ...' must name a stage`, e.right.loc);
      return ERROR;
    }
    // The right side names a stage, in the stages' own namespace.
    const stage = scope.module.stages.get(e.right.name);
    if (!stage) {
      if (this.declaredInBrokenText(e.right.name, scope.module)) return ERROR;
      this.report('bad-checkpoint', `there is no stage '${e.right.name}': '${modelName} @ ${e.right.name}' needs a stage`, e.right.loc, {
        hint: didYouMean(e.right.name, scope.module.stages.keys()),
      });
      return ERROR;
    }
    const kind = stage.stageKind.name;
    if (kind === 'eval' || kind === 'generate') {
      this.report('bad-checkpoint', `stage '${stage.name.name}' is an ${kind} stage and writes no checkpoint of '${modelName}'`, e.right.loc, {
        related: [{ message: `stage '${stage.name.name}' is declared here`, span: stage.name.loc }],
      });
      return ERROR;
    }
    const trained = this.stageTargetModel(stage);
    if (trained !== null && trained !== modelName) {
      this.report('bad-checkpoint', `stage '${stage.name.name}' updates '${trained}', not '${modelName}', so '${modelName} @ ${stage.name.name}' does not exist`, e.right.loc, {
        related: [{ message: `stage '${stage.name.name}' is declared here`, span: stage.name.loc }],
      });
      return ERROR;
    }
    const ref: CheckpointRef = { model: modelName, stage: stage.name.name, span: e.loc };
    scope.recordCheckpoint(ref, e.loc);
    return {
      k: 'model',
      model: { ...model, display: `${modelName} @ ${stage.name.name}`, origin: { model: modelName, checkpoint: ref }, checkpoints: [...model.checkpoints, ref] },
    };
  }

  /** The name of the recipe-level model a stage updates, or null when it cannot be told. */
  stageTargetModel(stage: StageDecl): string | null {
    let target = stage.target;
    while (target.kind === 'ParenExpr') target = target.expression;
    if (target.kind === 'NameExpr') return target.name;
    if (target.kind === 'BinaryExpr' && target.op === '@' && target.left.kind === 'NameExpr') return target.left.name;
    return null;
  }

  private inferMember(e: MemberExpr, scope: Scope): Ty {
    const object = this.infer(e.object, scope);
    const name = e.member.name;
    const unknown = (candidates: Iterable<string>, what: string): Ty => {
      // An empty name was left by the parser after a syntax error it already reported.
      if (name === '') return ERROR;
      this.report('unknown-member', `${what} has no member '${name}'`, e.member.loc, { hint: didYouMean(name, candidates) });
      return ERROR;
    };
    switch (object.k) {
      case 'error':
        return ERROR;
      case 'model': {
        const m = object.model;
        const member = m.members.get(name);
        if (member) return member.k === 'param' ? member.type : { k: 'model', model: member.model };
        const argTy = m.args.get(name);
        if (argTy) return argTy;
        return unknown([...m.members.keys(), ...m.args.keys()], `model ${m.display}`);
      }
      case 'tokenizer':
        if (name === 'vocab') return { k: 'int', value: object.vocab };
        return unknown(['vocab'], 'a tokenizer');
      case 'dataset': {
        if ((name === 'train' || name === 'val') && object.splits) return { ...object, display: `${object.display}.${name}` };
        if (name === 'prompts' && (object.format === 'prompt_completion' || object.format === 'preference')) {
          return this.services.datasetType('prompts', null, false, `${object.display}.prompts`);
        }
        const options = [...(object.splits ? ['train', 'val'] : []), ...(object.format === 'prompt_completion' || object.format === 'preference' ? ['prompts'] : [])];
        if ((name === 'train' || name === 'val') && !object.splits) {
          this.report('unknown-member', `dataset ${object.display} has no '${name}' split`, e.member.loc, { hint: 'give the dataset a split, e.g. split: 0.95' });
          return ERROR;
        }
        return unknown(options, `dataset ${object.display}`);
      }
      case 'record': {
        const field = object.fields.get(name);
        if (field) return field;
        return unknown(object.fields.keys(), `${object.name}`);
      }
      case 'module': {
        const module = [...this.allModules()].find((m) => m.path === object.path);
        const decl = module?.decls.get(name);
        if (module && decl) return this.declType(module, decl);
        return unknown(module?.decls.keys() ?? [], `module ${object.path}`);
      }
      case 'stage': {
        if (name === 'output' && object.decl.stageKind.name === 'generate') {
          scope.recordStage(object.decl.name.name, e.loc, `reads the dataset generated by stage '${object.decl.name.name}'`);
          return this.generatedDataset(object.decl);
        }
        return unknown(object.decl.stageKind.name === 'generate' ? ['output'] : [], `stage '${object.decl.name.name}'`);
      }
      case 'tuple':
        return unknown([], describeKind(object));
      default:
        return unknown([], describeKind(object));
    }
  }

  /** Set by the program: the modules, for namespace member lookups. */
  allModules: () => Iterable<ModuleInfo> = () => [];

  /** The dataset a generate stage writes; its format comes from the stage's `format` setting. */
  generatedDataset(stage: StageDecl): Ty {
    const setting = stage.items.find((i) => i.kind === 'Setting' && i.name.name === 'format');
    const format = setting && setting.kind === 'Setting' && setting.value.kind === 'NameExpr' ? setting.value.name : 'preference';
    const t = this.services.datasetType(format, null, false, `${stage.name.name}.output`);
    return t.k === 'dataset' ? { ...t, producedBy: stage.name.name } : t;
  }

  private inferIndex(e: IndexExpr, scope: Scope): Ty {
    const object = this.infer(e.object, scope);
    if (object.k === 'error') return ERROR;
    if (object.k === 'dataset') {
      const ok = e.subscripts.length === 1 && e.subscripts[0]!.kind === 'SliceSubscript';
      if (!ok) {
        this.report('bad-index', `a dataset can only be sliced, like ${exprText(e.object)}[:256]`, e.loc);
        return ERROR;
      }
      this.sliceBounds(e.subscripts[0] as SliceSubscript, scope);
      return { ...object, display: `${object.display}[...]` };
    }
    if ((object.k === 'tuple' || object.k === 'list') && e.subscripts.length === 1 && e.subscripts[0]!.kind === 'IndexSubscript') {
      const i = intConst(this.infer(e.subscripts[0]!.index, scope));
      const n = object.elements.length;
      if (i === null || i < -n || i >= n) {
        this.report('bad-index', `index out of range for ${describeKind(object)}`, e.subscripts[0]!.loc);
        return ERROR;
      }
      return object.elements[i < 0 ? n + i : i]!;
    }
    if (object.k !== 'tensor') {
      this.report('bad-index', `${describeKind(object)} cannot be indexed`, e.loc);
      return ERROR;
    }
    return this.indexTensor(object, e, scope);
  }

  private sliceBounds(s: SliceSubscript, scope: Scope): { start: Dim | null; end: Dim | null } | null {
    const bound = (x: Expression | null): Dim | null | undefined => {
      if (!x) return null;
      const t = this.infer(x, scope);
      if (t.k === 'int' && t.value) return t.value;
      if (t.k !== 'error') this.report('bad-index', `a slice bound must be an integer, but ${exprText(x)} is ${describeKind(t)}`, x.loc);
      return undefined;
    };
    const start = bound(s.start);
    const end = bound(s.end);
    if (start === undefined || end === undefined) return null;
    return { start, end };
  }

  private indexTensor(t: TensorTy, e: IndexExpr, scope: Scope): Ty {
    const subs = e.subscripts;
    const ellipsisAt = subs.findIndex((s) => s.kind === 'EllipsisSubscript');
    if (subs.filter((s) => s.kind === 'EllipsisSubscript').length > 1) {
      this.report('bad-index', 'an index may contain at most one ...', e.loc);
      return ERROR;
    }
    const explicit = subs.length - (ellipsisAt >= 0 ? 1 : 0);
    const rank = t.shape.dims.length;
    if (t.shape.ellipsis && ellipsisAt !== 0) {
      this.report('bad-index', `${exprText(e.object)} is ${formatType(t)} of unknown rank: index it from the right, like ${exprText(e.object)}[..., i]`, e.loc);
      return ERROR;
    }
    if (explicit > rank) {
      this.report('bad-index', `too many indices: ${exprText(e.object)} is ${formatType(t)} with ${rank} dimension${rank === 1 ? '' : 's'} but ${explicit} are indexed`, e.loc);
      return ERROR;
    }
    // Map each subscript to the dimension it applies to.
    const before = ellipsisAt >= 0 ? subs.slice(0, ellipsisAt) : subs;
    const after = ellipsisAt >= 0 ? subs.slice(ellipsisAt + 1) : [];
    // Appends the dimension a subscript leaves (none for an integer index) to `out`.
    const apply = (sub: (typeof subs)[number], dim: Dim, out: Dim[]): boolean => {
      if (sub.kind === 'SliceSubscript') {
        const b = this.sliceBounds(sub, scope);
        if (!b) return false;
        const len = sliceLength(dim, b.start, b.end);
        if (isShapeError(len)) {
          this.report(len.code, `${len.message}: ${exprText(e)}`, sub.loc);
          return false;
        }
        out.push(len);
        return true;
      }
      if (sub.kind === 'IndexSubscript') {
        const it = this.infer(sub.index, scope);
        if (it.k === 'error') return false;
        if (it.k !== 'int') {
          this.report('bad-index', `an index must be an integer (use gather for tensors of indices), but ${exprText(sub.index)} is ${describeKind(it)}`, sub.loc);
          return false;
        }
        const i = it.value && constValue(it.value);
        const size = constValue(dim);
        if (i !== null && i !== undefined && size !== null && (i >= size || i < -size)) {
          this.report('index-out-of-range', `index ${i} is out of range for a dimension of size ${size}`, sub.loc);
          return false;
        }
        return true;
      }
      return true;
    };
    const head: Dim[] = [];
    for (let i = 0; i < before.length; i++) if (!apply(before[i]!, t.shape.dims[i]!, head)) return ERROR;
    const middle = t.shape.dims.slice(before.length, rank - after.length);
    const tail: Dim[] = [];
    for (let i = 0; i < after.length; i++) if (!apply(after[i]!, t.shape.dims[rank - after.length + i]!, tail)) return ERROR;
    return { k: 'tensor', dtype: t.dtype, shape: { ellipsis: t.shape.ellipsis, dims: [...head, ...middle, ...tail] } };
  }

  // ------------------------------------------------------------ calls

  private inferCall(e: CallExpr, scope: Scope): Ty {
    // A call whose text holds a syntax error has an unknown result: check it quietly so its uses do not cascade.
    if (this.hasSyntaxErrorIn(e.loc)) {
      this.muted++;
      try {
        this.inferCallChecked(e, scope);
      } finally {
        this.muted--;
      }
      return ERROR;
    }
    return this.inferCallChecked(e, scope);
  }

  private inferCallChecked(e: CallExpr, scope: Scope): Ty {
    const callee = this.infer(e.callee, scope);
    switch (callee.k) {
      case 'error':
        // Unknown callee (already reported): its arguments may be bare names it would have read as symbols.
        this.inferQuietly(e.args, scope);
        return ERROR;
      case 'builtin':
        return this.callBuiltin(callee.name, e, scope);
      case 'block':
        return this.callBlock(callee.decl, e, scope);
      case 'fn':
        return this.callFn(callee.decl, e, scope);
      case 'model':
        return this.callModel(callee.model, e, scope);
      default:
        this.report('not-callable', `${exprText(e.callee)} is ${describeKind(callee)} and cannot be called`, e.callee.loc);
        return ERROR;
    }
  }

  /**
   * Matches call arguments to parameters: positional first, then by name.
   * Reports unknown, duplicate, missing and surplus arguments.
   */
  bindArguments(
    params: readonly { name: string; optional: boolean }[],
    args: readonly Argument[],
    what: string,
    callSpan: Span,
  ): Map<string, Argument> | null {
    const bound = new Map<string, Argument>();
    let ok = true;
    let positional = 0;
    let sawNamed = false;
    for (const a of args) {
      if (a.label) {
        sawNamed = true;
        const name = a.label.name;
        if (!params.some((p) => p.name === name)) {
          this.report('unknown-argument', `${what} has no parameter '${name}'`, a.label.loc, {
            hint: didYouMean(name, params.map((p) => p.name)) ?? `its parameters are: ${params.map((p) => p.name).join(', ') || '(none)'}`,
          });
          ok = false;
          continue;
        }
        if (bound.has(name)) {
          this.report('duplicate-argument', `${what}: argument '${name}' is given twice`, a.label.loc);
          ok = false;
          continue;
        }
        bound.set(name, a);
        continue;
      }
      if (sawNamed) {
        // Once, for the first: the rest of the call is misread from here on.
        if (ok) this.report('positional-after-named', `${what}: a positional argument cannot follow named ones`, a.loc);
        ok = false;
        continue;
      }
      const p = params[positional++];
      if (!p) {
        this.report('too-many-arguments', `${what} takes ${params.length} argument${params.length === 1 ? '' : 's'} but more were given`, a.loc);
        ok = false;
        continue;
      }
      bound.set(p.name, a);
    }
    const missing = params.filter((p) => !p.optional && !bound.has(p.name)).map((p) => p.name);
    if (missing.length > 0) {
      // Not reported after another binding error or a syntax error in the call: it is most likely their consequence.
      if (ok && !this.hasSyntaxErrorIn(callSpan)) {
        this.report('missing-argument', `${what} is missing ${missing.length === 1 ? 'argument' : 'arguments'} ${missing.map((m) => `'${m}'`).join(', ')}`, callSpan);
      }
      ok = false;
    }
    return ok ? bound : null;
  }

  /** Reads an argument given as a bare name (`format: preference`, `specials: [pad, eos]`). */
  private symbolArg(spec: ParamSpec, a: Argument, what: string): Ty {
    const one = (x: Expression): Ty => {
      if (x.kind !== 'NameExpr') {
        this.report('type-mismatch', `${what}: '${spec.name}' takes a name${spec.symbols ? ` (one of ${spec.symbols.join(', ')})` : ''}, not ${exprText(x)}`, x.loc);
        return ERROR;
      }
      if (spec.symbols && !spec.symbols.includes(x.name)) {
        this.report('unknown-value', `${what}: '${x.name}' is not a valid ${spec.name}; expected one of ${spec.symbols.join(', ')}`, x.loc, {
          hint: didYouMean(x.name, spec.symbols),
        });
        return ERROR;
      }
      return { k: 'symbol', name: x.name };
    };
    if (spec.mode === 'symbols') {
      if (a.value.kind !== 'ListExpr') {
        this.report('type-mismatch', `${what}: '${spec.name}' takes a list of names, like [a, b]`, a.value.loc);
        return ERROR;
      }
      return { k: 'list', elements: a.value.elements.map(one) };
    }
    return one(a.value);
  }

  /** Checks arguments of a call whose binding failed: they are likely misread, so only their own errors matter (none are reported). */
  private inferQuietly(args: readonly Argument[], scope: Scope): void {
    this.muted++;
    try {
      for (const a of args) this.infer(a.value, scope);
    } finally {
      this.muted--;
    }
  }

  callBuiltin(name: string, e: CallExpr, scope: Scope): Ty {
    const spec = BUILTINS[name]!;
    const params = spec.params.map((p) => ({ name: p.name, optional: p.default !== undefined }));
    const bound = this.bindArguments(params, e.args, name, e.loc);
    if (!bound) {
      this.inferQuietly(e.args, scope);
      return ERROR;
    }
    const args = new Map<string, BoundArg>();
    for (const p of spec.params) {
      const a = bound.get(p.name);
      if (!a) {
        if (p.default) args.set(p.name, { ty: p.default, span: e.loc, text: String(p.name) });
        continue;
      }
      const ty = p.mode && p.mode !== 'value' ? this.symbolArg(p, a, name) : this.infer(a.value, scope);
      const value = a.value;
      // The text is only needed for messages: print it lazily.
      args.set(p.name, { ty, span: value.loc, get text() { return exprText(value); } });
    }
    const site: CallSite = {
      name,
      span: e.loc,
      args,
      services: this.services,
      report: (code, message, span = e.loc, options) => this.report(code, message, span, options),
    };
    return spec.rule(site);
  }

  // ------------------------------------------------------------ types written in the source

  /**
   * Resolves a written type. Inside a signature, a dimension name that is not
   * in scope is a new free symbol (bound per call) and is added to `free`.
   */
  resolveType(node: TypeNode, scope: Scope, free: Set<string> | null): Ty {
    if (node.kind === 'TupleTypeNode') return { k: 'tuple', elements: node.elements.map((t) => this.resolveType(t, scope, free)) };
    const name = node.name.name;
    // Without a shape, `bool` and `str` are compile-time values (`bias: bool = true`), not tensors.
    if (!node.dims && name === 'bool') return { k: 'bool', value: null };
    if (!node.dims && name === 'str') return { k: 'str', value: null };
    const dtype = dtypeOf(name);
    if (dtype) {
      if (!node.dims) return tensor(dtype, []);
      const dims: Dim[] = [];
      let ellipsis = false;
      for (const [i, d] of node.dims.entries()) {
        if (d.kind === 'EllipsisDim') {
          if (i !== 0) {
            this.report('bad-type', `'...' may only stand first in a shape`, d.loc);
            return ERROR;
          }
          ellipsis = true;
          continue;
        }
        const dim = this.resolveDim(d, scope, free);
        if (!dim) return ERROR;
        dims.push(dim);
      }
      return tensor(dtype, dims, ellipsis);
    }
    if (node.dims) {
      this.report('bad-type', `'${name}' takes no shape; tensor types are ${DTYPES.join(', ')} with a shape, like f32[B, T]`, node.loc);
      return ERROR;
    }
    switch (name) {
      case 'dim':
      case 'int':
        return { k: 'int', value: null };
      case 'float':
        return { k: 'float', value: null };
      case 'str':
        return { k: 'str', value: null };
      case 'model':
        return { k: 'model', model: PLACEHOLDER_MODEL };
    }
    if (name === '') return ERROR;
    this.report('unknown-type', `unknown type '${name}'`, node.name.loc, {
      hint: didYouMean(name, [...DTYPES, 'dim', 'int', 'float', 'str', 'model']) ?? `types are ${DTYPES.join(', ')} (with a shape), dim, int, float, bool, str, model`,
    });
    return ERROR;
  }

  private resolveDim(d: Expression, scope: Scope, free: Set<string> | null): Dim | null {
    if (d.kind === 'NameExpr' && scope.local(d.name) === undefined) {
      if (free) {
        free.add(d.name);
        scope.define(d.name, { k: 'int', value: symDim(d.name) });
        return symDim(d.name);
      }
      this.report('unknown-dim', `dimension '${d.name}' is not bound here: name it in a parameter's type or as a block parameter`, d.loc, {
        hint: didYouMean(d.name, scope.localNames()),
      });
      return null;
    }
    const t = this.infer(d, scope);
    if (t.k === 'error') return null;
    if (t.k !== 'int' || !t.value) {
      this.report('bad-type', `a dimension must be an integer, but ${exprText(d)} is ${describeKind(t)}`, d.loc);
      return null;
    }
    if (isInvalidConstant(t.value)) {
      this.report('bad-dimension', `dimension ${exprText(d)} = ${formatDim(t.value)} is not a non-negative integer`, d.loc);
      return null;
    }
    return t.value;
  }

  // ------------------------------------------------------------ unification (calls against signatures)

  /**
   * Matches an actual argument type against a parameter's written type,
   * binding the signature's free symbols and leading `...`. Returns a message
   * when they do not match.
   */
  unify(pattern: Ty, actual: Ty, b: Bindings): string | null {
    if (actual.k === 'error' || pattern.k === 'error') return null;
    switch (pattern.k) {
      case 'tensor': {
        let a = actual;
        if (a.k === 'int' || a.k === 'float') a = tensor(pattern.dtype, []);
        if (a.k !== 'tensor') return `expected ${formatType(pattern)}, got ${describeKind(actual)}`;
        if (a.dtype !== pattern.dtype) return `expected ${this.show(pattern, b)}, got ${formatType(a)} (dtype ${a.dtype} instead of ${pattern.dtype})`;
        return this.unifyShape(pattern, a, b);
      }
      case 'int': {
        if (actual.k !== 'int') return `expected an integer, got ${describeKind(actual)}`;
        // A `dim` parameter of a function is a symbol of its signature: bind it to the argument's value.
        const symbol = pattern.value && dimSymbols(pattern.value)[0];
        if (symbol && b.free.has(symbol) && actual.value && !b.dims.has(symbol)) b.dims.set(symbol, actual.value);
        return null;
      }
      case 'float':
        return actual.k === 'float' || actual.k === 'int' ? null : `expected a number, got ${describeKind(actual)}`;
      case 'bool':
        return actual.k === 'bool' ? null : `expected true or false, got ${describeKind(actual)}`;
      case 'str':
        return actual.k === 'str' ? null : `expected a string, got ${describeKind(actual)}`;
      case 'model':
        return actual.k === 'model' ? null : `expected a model, got ${describeKind(actual)}`;
      case 'tuple': {
        if (actual.k !== 'tuple' || actual.elements.length !== pattern.elements.length) return `expected a tuple of ${pattern.elements.length}, got ${describeKind(actual)}`;
        for (const [i, p] of pattern.elements.entries()) {
          const m = this.unify(p, actual.elements[i]!, b);
          if (m) return m;
        }
        return null;
      }
      default:
        return null;
    }
  }

  private unifyShape(pattern: TensorTy, actual: TensorTy, b: Bindings): string | null {
    const p = pattern.shape;
    const a = actual.shape;
    const mismatch = (): string => `expected ${this.show(pattern, b)}, got ${formatType(actual)}`;
    if (!p.ellipsis && a.ellipsis) return `${mismatch()} of unknown rank`;
    if (p.ellipsis ? a.dims.length < p.dims.length && !a.ellipsis : a.dims.length !== p.dims.length) return mismatch();
    const offset = a.dims.length - p.dims.length;
    if (p.ellipsis) {
      const lead: Shape = { ellipsis: a.ellipsis, dims: a.dims.slice(0, Math.max(0, offset)) };
      if (b.lead && !shapesEqual(b.lead, lead)) return `${mismatch()}: its leading dimensions ${formatShape(lead)} differ from ${formatShape(b.lead)} bound by an earlier argument`;
      b.lead = lead;
    }
    for (let i = 0; i < p.dims.length; i++) {
      const want = substituteDim(p.dims[i]!, b.dims);
      const got = a.dims[offset + i];
      if (got === undefined) return mismatch();
      if (dimsEqual(want, got)) continue;
      const solved = solveFor(want, got, (s) => b.free.has(s) && !b.dims.has(s));
      if (solved && !isInvalidConstant(solved.value)) {
        b.dims.set(solved.symbol, solved.value);
        continue;
      }
      return mismatch();
    }
    return null;
  }

  /** A written type with what is known of its symbols: `f32[B, T, d]` shows as `f32[B, T, 128]`. */
  show(t: Ty, b: Bindings): string {
    return formatType(this.substitute(t, b));
  }

  /** Applies bindings to a type (return types of calls). */
  substitute(t: Ty, b: Bindings): Ty {
    if (t.k === 'tensor') {
      const dims = t.shape.dims.map((d) => substituteDim(d, b.dims));
      if (t.shape.ellipsis && b.lead) return { k: 'tensor', dtype: t.dtype, shape: { ellipsis: b.lead.ellipsis, dims: [...b.lead.dims, ...dims] } };
      return { k: 'tensor', dtype: t.dtype, shape: { ellipsis: t.shape.ellipsis, dims } };
    }
    if (t.k === 'int' && t.value) return { k: 'int', value: substituteDim(t.value, b.dims) };
    if (t.k === 'tuple') return { k: 'tuple', elements: t.elements.map((x) => this.substitute(x, b)) };
    return t;
  }

  // ------------------------------------------------------------ blocks → models

  private callBlock(decl: BlockDecl, e: CallExpr, scope: Scope): Ty {
    const what = decl.name.name;
    const params = decl.params.map((p) => ({ name: p.name.name, optional: p.default !== null }));
    const bound = this.bindArguments(params, e.args, what, e.loc);
    if (!bound) {
      this.inferQuietly(e.args, scope);
      return ERROR;
    }
    const argTypes = new Map<string, Ty>();
    let ok = true;
    for (const a of e.args) {
      const t = this.infer(a.value, scope);
      if (t.k === 'error') ok = false;
      const name = [...bound.entries()].find(([, v]) => v === a)?.[0];
      if (name) argTypes.set(name, t);
    }
    if (!ok) return ERROR;
    const module = this.moduleOf(decl, scope.module);
    const declScope = new Scope(module);
    // Defaults and declared types are evaluated in the block's own module.
    const args = new Map<string, Ty>();
    for (const p of decl.params) {
      let t = argTypes.get(p.name.name);
      const argExpr = bound.get(p.name.name);
      if (t === undefined) t = p.default ? this.infer(p.default, this.paramScope(declScope, args)) : ERROR;
      if (p.type) {
        const want = this.resolveType(p.type, declScope, null);
        const mismatch = this.unify(want, t, newBindings(new Set()));
        if (mismatch) {
          this.report('argument-type', `${what}: argument '${p.name.name}' ${mismatch}`, argExpr?.value.loc ?? e.loc, {
            related: [{ message: `parameter '${p.name.name}' is declared here`, span: p.loc }],
          });
          return ERROR;
        }
        if (p.type.kind === 'TensorTypeNode' && p.type.name.name === 'dim' && t.k === 'int' && t.value && isInvalidConstant(t.value)) {
          this.report('argument-type', `${what}: '${p.name.name}' must be a non-negative whole dimension, but it is ${formatDim(t.value)}`, argExpr?.value.loc ?? e.loc);
          return ERROR;
        }
      }
      args.set(p.name.name, t);
    }
    const model = this.instantiate(decl, module, args, e.loc);
    return model ? { k: 'model', model } : ERROR;
  }

  private paramScope(base: Scope, args: ReadonlyMap<string, Ty>): Scope {
    const s = base.child();
    for (const [k, v] of args) s.define(k, v);
    return s;
  }

  /** The module declaring a block or fn (searched among loaded modules; the caller's module first). */
  moduleOf(decl: BlockDecl | FnDecl, hint: ModuleInfo): ModuleInfo {
    if (!this.declModules.has(decl)) {
      for (const m of this.allModules()) for (const d of m.recipe.declarations) this.declModules.set(d, m);
    }
    return this.declModules.get(decl) ?? hint;
  }

  private readonly declModules = new Map<object, ModuleInfo>();

  /**
   * Builds a model from a block and bound arguments: evaluates `where`
   * constraints, members (params and submodules) and the forward signature,
   * and checks the forward body. Memoised per block and arguments.
   */
  instantiate(decl: BlockDecl, module: ModuleInfo, args: ReadonlyMap<string, Ty>, callSpan: Span): ModelInstance | null {
    const display = `${decl.name.name}(${[...args].map(([k, v]) => `${k}: ${displayValue(v)}`).join(', ')})`;
    let memo = this.instances.get(decl);
    if (!memo) this.instances.set(decl, (memo = new Map()));
    const cached = memo.get(display);
    if (cached) return cached;
    // Check the block generically first (once, in its own symbols), so a failure there keeps this instantiation quiet.
    this.checkBlockGeneric(decl, module);
    const result = this.withFrame({ span: callSpan, what: display }, () => this.buildInstance(decl, module, args, display, callSpan));
    if (result) memo.set(display, result);
    return result;
  }

  private buildInstance(decl: BlockDecl, module: ModuleInfo, args: ReadonlyMap<string, Ty>, display: string, callSpan: Span): ModelInstance | null {
    const scope = this.paramScope(new Scope(module), args);
    const quiet = !this.generic && this.failedGeneric.has(decl);
    for (const w of decl.where) {
      const v = this.infer(w, scope);
      if (v.k === 'bool' && v.value === false) {
        this.report('where-violated', `${display} violates 'where ${exprText(w)}'${this.explainComparison(w, scope)}`, callSpan, {
          related: [{ message: 'the constraint is declared here', span: w.loc }],
        });
        return null;
      }
      if (v.k !== 'bool' && v.k !== 'error') this.report('type-mismatch', `a where clause must be a condition, but ${exprText(w)} is ${describeKind(v)}`, w.loc);
    }
    if (quiet) this.muted++;
    try {
      return this.buildMembers(decl, scope, args, display);
    } finally {
      if (quiet) this.muted--;
    }
  }

  private buildMembers(decl: BlockDecl, scope: Scope, args: ReadonlyMap<string, Ty>, display: string): ModelInstance {
    const members = new Map<string, ModelMember>();
    let paramCount: Dim = constDim(0);
    let forward: ForwardSignature | null = null;
    const checkpoints: CheckpointRef[] = [];
    for (const a of args.values()) if (a.k === 'model') checkpoints.push(...a.model.checkpoints);
    for (const m of decl.members) {
      if (m.kind === 'ForwardMember') {
        if (forward) {
          this.report('duplicate-forward', `block ${decl.name.name} has more than one forward`, m.loc);
          continue;
        }
        forward = this.forwardSignature(m, scope, display);
        continue;
      }
      const present = this.memberCondition(m.condition, scope);
      const name = m.name.name;
      if (members.has(name) || args.has(name)) {
        this.report('duplicate-name', `'${name}' is already defined in block ${decl.name.name}`, m.name.loc);
        continue;
      }
      if (!present) {
        scope.define(name, NONE);
        continue;
      }
      if (m.kind === 'ParamMember') {
        const t = this.resolveType(m.type, scope, null);
        const init = this.infer(m.init, scope);
        if (init.k !== 'initializer' && init.k !== 'error') {
          this.report('type-mismatch', `param '${name}' must be initialised with normal(std), uniform(bound), zeros() or ones(), but ${exprText(m.init)} is ${describeKind(init)}`, m.init.loc);
        }
        if (t.k !== 'tensor') {
          if (t.k !== 'error') this.report('bad-type', `param '${name}' must be a tensor type like f32[d, d], not ${formatType(t)}`, m.type.loc);
          scope.define(name, ERROR);
          continue;
        }
        const count = elementCount(t.shape);
        if (!count) {
          this.report('bad-type', `param '${name}' must have a fully known shape, not ${formatType(t)}`, m.type.loc);
        } else paramCount = addDims(paramCount, count);
        members.set(name, { k: 'param', type: t });
        scope.define(name, t);
      } else {
        const t = this.infer(m.value, scope);
        if (t.k === 'model') {
          members.set(name, { k: 'submodule', model: t.model });
          paramCount = addDims(paramCount, t.model.paramCount);
          checkpoints.push(...t.model.checkpoints);
        } else if (t.k !== 'error') {
          this.report('type-mismatch', `member '${name}' must be a model (an instantiated block), but ${exprText(m.value)} is ${describeKind(t)}`, m.value.loc, {
            hint: t.k === 'block' ? `instantiate it: ${exprText(m.value)}(...)` : null,
          });
        }
        scope.define(name, t);
      }
    }
    if (!forward && !this.hasSyntaxErrorIn(decl.loc)) {
      this.report('missing-forward', `block ${decl.name.name} has no forward(...) -> Type`, decl.name.loc);
    }
    return {
      display,
      forward,
      members,
      args,
      paramCount,
      frozen: false,
      origin: { model: null, checkpoint: null },
      checkpoints,
      lora: null,
    };
  }

  /** For a violated comparison, the values on both sides: " (130 % 4 == 0 is 2 == 0)". */
  private explainComparison(w: Expression, scope: Scope): string {
    if (w.kind !== 'BinaryExpr') return '';
    // The value of each side that is not a literal: "d % heads is 2".
    const side = (x: Expression): string | null => {
      if (x.kind === 'NumberLiteral') return null;
      const t = this.infer(x, scope);
      const v = t.k === 'int' && t.value ? formatDim(t.value) : t.k === 'float' && t.value !== null ? String(t.value) : null;
      return v === null ? null : `${exprText(x)} is ${v}`;
    };
    const parts = [side(w.left), side(w.right)].filter((p): p is string => p !== null);
    return parts.length ? `: ${parts.join(', ')}` : '';
  }

  private memberCondition(cond: Expression | null, scope: Scope): boolean {
    if (!cond) return true;
    const c = this.infer(cond, scope);
    if (c.k === 'bool') return c.value !== false;
    if (c.k !== 'error') this.report('type-mismatch', `a member condition must be true or false, but ${exprText(cond)} is ${describeKind(c)}`, cond.loc);
    return true;
  }

  private forwardSignature(m: ForwardMember, blockScope: Scope, display: string): ForwardSignature | null {
    const free = new Set<string>();
    const sigScope = blockScope.child();
    const params = m.params.map((p) => ({ name: p.name.name, type: this.paramType(p, sigScope, free) }));
    const returns = this.resolveType(m.returnType, sigScope, null);
    const bodyScope = sigScope.child();
    for (const p of params) bodyScope.define(p.name, p.type);
    for (const w of m.where) this.infer(w, bodyScope);
    const result = this.checkBody(m.body, bodyScope);
    this.checkReturn(result, returns, m.body.result.loc, `forward of ${display}`, m.body);
    const checkWhere = m.where.length
      ? (bindings: ReadonlyMap<string, Dim>): string[] => {
          const s = blockScope.child();
          for (const sym of free) s.define(sym, { k: 'int', value: bindings.get(sym) ?? symDim(sym) });
          return m.where.flatMap((w) => {
            const v = this.infer(w, s);
            return v.k === 'bool' && v.value === false ? [`where ${exprText(w)}${this.explainComparison(w, s)}`] : [];
          });
        }
      : null;
    return { params, returns, free, checkWhere, span: m.loc };
  }

  private paramType(p: Parameter, scope: Scope, free: Set<string>): Ty {
    if (!p.type) {
      this.report('missing-type', `forward parameter '${p.name.name}' needs a type, like ${p.name.name}: f32[B, T, d]`, p.loc);
      return ERROR;
    }
    return this.resolveType(p.type, scope, free);
  }

  /**
   * The type of a function parameter. A `dim` or `int` parameter becomes a
   * symbol of the signature (usable in later types: `x: f32[B, heads]`), bound per call.
   */
  private signatureParamType(p: Parameter, scope: Scope, free: Set<string>): Ty {
    const t = this.resolveType(p.type!, scope, free);
    if (t.k !== 'int') return t;
    const symbolic: Ty = { k: 'int', value: symDim(p.name.name) };
    free.add(p.name.name);
    scope.define(p.name.name, symbolic);
    return symbolic;
  }

  private checkBody(body: Body, scope: Scope): Ty {
    for (const s of body.statements) this.bindPattern(s.pattern, this.infer(s.value, scope), scope);
    return this.infer(body.result, scope);
  }

  private bindPattern(p: Pattern, t: Ty, scope: Scope): void {
    if (p.kind === 'NamePattern') {
      scope.define(p.name.name, t);
      return;
    }
    if (t.k === 'error') {
      for (const x of p.elements) this.bindPattern(x, ERROR, scope);
      return;
    }
    if (t.k !== 'tuple' || t.elements.length !== p.elements.length) {
      this.report('pattern-arity', `cannot unpack ${describeKind(t)} into ${p.elements.length} names`, p.loc);
      for (const x of p.elements) this.bindPattern(x, ERROR, scope);
      return;
    }
    p.elements.forEach((x, i) => this.bindPattern(x, t.elements[i]!, scope));
  }

  private checkReturn(result: Ty, declared: Ty, span: Span, what: string, body: Body): void {
    // A body the parser could not fully read has no reliable result type.
    if (result.k === 'error' || declared.k === 'error' || this.hasSyntaxErrorIn(body.loc)) return;
    const ok =
      declared.k === 'tensor'
        ? (result.k === 'tensor' && result.dtype === declared.dtype && shapesEqual(result.shape, declared.shape)) ||
          ((result.k === 'float' || result.k === 'int') && declared.shape.dims.length === 0 && !declared.shape.ellipsis)
        : this.unify(declared, result, newBindings(new Set())) === null;
    if (!ok) {
      this.report('return-type', `${what} returns ${formatType(result)} but is declared to return ${formatType(declared)}`, span);
    }
  }

  /** Calls a model's forward pass. */
  private callModel(model: ModelInstance, e: CallExpr, scope: Scope): Ty {
    const argTypes = e.args.map((a) => this.infer(a.value, scope));
    const f = model.forward;
    if (!f) return ERROR;
    const bound = this.bindArguments(f.params.map((p) => ({ name: p.name, optional: false })), e.args, model.display, e.loc);
    if (!bound) return ERROR;
    const b = newBindings(f.free);
    for (const p of f.params) {
      const a = bound.get(p.name)!;
      const t = argTypes[e.args.indexOf(a)]!;
      const mismatch = this.unify(p.type, t, b);
      if (mismatch) {
        this.report('argument-type', `${model.display}: input '${p.name}' ${mismatch}`, a.value.loc, {
          related: f.span ? [{ message: 'forward is declared here', span: f.span }] : [],
        });
        return ERROR;
      }
    }
    if (f.checkWhere) {
      for (const v of f.checkWhere(b.dims)) {
        this.report('where-violated', `${model.display}: this call violates ${v}`, e.loc, {
          related: f.span ? [{ message: 'forward is declared here', span: f.span }] : [],
        });
        return ERROR;
      }
    }
    return this.substitute(f.returns, b);
  }

  // ------------------------------------------------------------ functions

  private callFn(decl: FnDecl, e: CallExpr, scope: Scope): Ty {
    const what = decl.name.name;
    const argTypes = e.args.map((a) => this.infer(a.value, scope));
    const bound = this.bindArguments(decl.params.map((p) => ({ name: p.name.name, optional: p.default !== null })), e.args, what, e.loc);
    if (!bound || argTypes.some((t) => t.k === 'error')) return ERROR;
    const module = this.moduleOf(decl, scope.module);
    const sigScope = new Scope(module).child();
    const free = new Set<string>();
    const b = newBindings(free);
    const actuals = new Map<string, Ty>();
    // Inside the body, typed parameters have their written types (the callee's symbols); untyped ones the argument's type.
    const inBody = new Map<string, Ty>();
    for (const p of decl.params) {
      const a = bound.get(p.name.name);
      const t = a ? argTypes[e.args.indexOf(a)]! : p.default ? this.infer(p.default, sigScope) : ERROR;
      if (p.type) {
        const want = this.signatureParamType(p, sigScope, free);
        const mismatch = this.unify(want, t, b);
        if (mismatch) {
          this.report('argument-type', `${what}: argument '${p.name.name}' ${mismatch}`, a?.value.loc ?? e.loc, {
            related: [{ message: `parameter '${p.name.name}' is declared here`, span: p.loc }],
          });
          return ERROR;
        }
        inBody.set(p.name.name, want);
      } else inBody.set(p.name.name, t);
      actuals.set(p.name.name, t);
    }
    let result: Ty;
    if (isGenericallyChecked(decl)) {
      // Fully typed: the body was checked once, generically; apply the signature.
      result = this.substitute(this.resolveType(decl.returnType!, sigScope, null), b);
    } else {
      const key = [...actuals].map(([k, v]) => `${k}: ${formatType(v)}`).join(', ');
      let memo = this.fnResults.get(decl);
      if (!memo) this.fnResults.set(decl, (memo = new Map()));
      const cached = memo.get(key);
      if (cached) return cached;
      const quiet = this.failedGeneric.has(decl);
      result =
        this.withFrame({ span: e.loc, what: `${what}(${key})` }, () => {
          const body = new Scope(module).child();
          for (const [k, v] of inBody) body.define(k, v);
          for (const sym of free) body.define(sym, { k: 'int', value: symDim(sym) });
          if (quiet) return ERROR;
          const r = this.checkBody(decl.body, body);
          if (decl.returnType) {
            const declared = this.resolveType(decl.returnType, body, null);
            this.checkReturn(r, declared, decl.body.result.loc, `${what}`, decl.body);
            return this.substitute(declared, b);
          }
          return this.substitute(r, b);
        }) ?? ERROR;
      memo.set(key, result);
    }
    return result;
  }

  // ------------------------------------------------------------ generic checks of declarations

  /** Checks a block once with symbolic arguments (dims as symbols), so errors are found without a use. */
  checkBlockGeneric(decl: BlockDecl, module: ModuleInfo): void {
    if (this.genericChecked.has(decl)) return;
    this.genericChecked.add(decl);
    if (decl.params.some((p) => p.type?.kind === 'TensorTypeNode' && p.type.name.name === 'model')) return;
    const scope = new Scope(module);
    const args = new Map<string, Ty>();
    for (const p of decl.params) {
      if (!p.type) {
        this.report('missing-type', `block parameter '${p.name.name}' needs a type (dim, int, float, bool, str, model)`, p.loc);
        return;
      }
      const t = this.resolveType(p.type, scope, null);
      args.set(p.name.name, t.k === 'int' ? { k: 'int', value: symDim(p.name.name) } : t);
    }
    const wasGeneric = this.generic;
    const saved = this.stack.splice(0);
    this.generic = true;
    try {
      const before = this.bag.items.length;
      const instance = this.buildInstance(decl, module, args, `${decl.name.name}`, decl.name.loc);
      if (instance) this.genericInstances.set(decl, instance);
      if (this.bag.items.length > before) this.failedGeneric.add(decl);
    } finally {
      this.generic = wasGeneric;
      this.stack.push(...saved);
    }
  }

  /** Checks a fully typed function once with its signature's symbols. */
  checkFnGeneric(decl: FnDecl, module: ModuleInfo): void {
    if (!isGenericallyChecked(decl)) return;
    const scope = new Scope(module).child();
    const free = new Set<string>();
    for (const p of decl.params) scope.define(p.name.name, this.signatureParamType(p, scope, free));
    const before = this.bag.items.length;
    const result = this.checkBody(decl.body, scope);
    if (decl.returnType) this.checkReturn(result, this.resolveType(decl.returnType, scope, null), decl.body.result.loc, decl.name.name, decl.body);
    if (this.bag.items.length > before) this.failedGeneric.add(decl);
  }
}

const isModelParam = (p: Parameter): boolean => p.type?.kind === 'TensorTypeNode' && p.type.name.name === 'model';

/**
 * A function whose parameters all have non-model types and that declares its
 * return type is checked once with symbols; calls only apply its signature.
 * Other functions are checked at each call with the arguments' types.
 */
function isGenericallyChecked(decl: FnDecl): boolean {
  return decl.returnType !== null && decl.params.every((p) => p.type !== null && !isModelParam(p));
}

/** A stand-in for "any model" in the written type `model`. */
const PLACEHOLDER_MODEL: ModelInstance = {
  display: 'model',
  forward: null,
  members: new Map(),
  args: new Map(),
  paramCount: constDim(0),
  frozen: false,
  origin: { model: null, checkpoint: null },
  checkpoints: [],
  lora: null,
};

export interface Bindings {
  readonly free: ReadonlySet<string>;
  readonly dims: Map<string, Dim>;
  lead: Shape | null;
}

export function newBindings(free: ReadonlySet<string>): Bindings {
  return { free, dims: new Map(), lead: null };
}


/** An argument value as shown in a model's name: `128`, `true`, `policy @ sft`. */
function displayValue(t: Ty): string {
  switch (t.k) {
    case 'int':
      return t.value ? formatDim(t.value) : 'int';
    case 'float':
      return t.value === null ? 'float' : String(t.value);
    case 'bool':
      return t.value === null ? 'bool' : String(t.value);
    case 'str':
      return t.value === null ? 'str' : JSON.stringify(t.value);
    case 'model':
      return t.model.origin.model && !t.model.origin.checkpoint ? t.model.origin.model : t.model.display;
    default:
      return formatType(t);
  }
}

