/**
 * The expression checker: infers the type of every expression, resolves
 * names and written types, binds call arguments, and evaluates compile-time
 * constants. It coordinates three helpers: operator typing (operatorTypes.ts),
 * unification of calls against signatures (unify.ts), and the instantiation
 * of blocks into models and calls of functions (instantiator.ts). Errors
 * inside an instantiation carry notes naming the chain of instantiations that
 * led there ("in Transformer(...) at recipe:7:16").
 */
import type { Argument, BinaryExpr, BlockDecl, CallExpr, Expression, FnDecl, IndexExpr, MemberExpr, SliceSubscript, Span, StageDecl, TypeNode } from '../language/ast.js';
import { didYouMean, type DiagnosticBag, type DiagnosticOptions, type RelatedInfo } from '../language/diagnostics.js';
import { BUILTINS, CONSTANTS, dtypeOf, type BoundArg, type BuiltinServices, type CallSite, type ParamSpec } from './builtins.js';
import { constDim, constValue, formatDim, isInvalidConstant, symDim, type Dim } from './dims.js';
import { exprText } from './exprText.js';
import { Instantiator, type Frame, type InstantiationContext } from './instantiator.js';
import type { ModuleInfo, NamedDeclaration } from './modules.js';
import { binaryOperatorType, unaryOperatorType } from './operatorTypes.js';
import { Scope } from './scope.js';
import { isShapeError, sliceLength } from './shapes.js';
import { DTYPES, ERROR, describeKind, formatType, intConst, tensor, type CheckpointRef, type ModelInstance, type TensorTy, type Ty } from './types.js';

export { exprText } from './exprText.js';

/** Codes the parser reports. */
const SYNTAX_CODES = new Set(['syntax-error', 'unterminated-string', 'invalid-character', 'invalid-escape']);

/** How deep instantiations may nest; deeper is reported as probable recursion. */
const MAX_DEPTH = 32;

/** Infers types and reports problems for one program; see the file comment. */
export class Checker implements InstantiationContext {
  private readonly stack: Frame[] = [];
  private readonly declTypes = new Map<NamedDeclaration, Ty>();
  private readonly inProgress = new Set<NamedDeclaration>();
  private readonly blocks: Instantiator = new Instantiator(this);
  /** Set while checking a block or fn generically (with symbolic arguments). */
  private genericMode = false;
  /** While positive, reports are dropped: re-checks of code whose generic check already failed. */
  private muted = 0;

  constructor(
    readonly bag: DiagnosticBag,
    readonly services: BuiltinServices,
  ) {}

  /** True while a block or fn is checked generically (with symbolic arguments). */
  get generic(): boolean {
    return this.genericMode;
  }

  /** Each block instantiated with symbolic arguments, for `ptr types`. */
  get genericInstances(): ReadonlyMap<BlockDecl, ModelInstance> {
    return this.blocks.genericInstances;
  }

  /** Checks a block once with symbolic arguments (dims as symbols), so errors are found without a use. */
  checkBlockGeneric(decl: BlockDecl, module: ModuleInfo): void {
    this.blocks.checkBlockGeneric(decl, module);
  }

  /** Checks a fully typed function once with its signature's symbols. */
  checkFnGeneric(decl: FnDecl, module: ModuleInfo): void {
    this.blocks.checkFnGeneric(decl, module);
  }

  /** Instantiates a block with every argument given (a built-in that builds a library block: pretrained(...)). */
  instantiateBlock(decl: BlockDecl, module: ModuleInfo, args: ReadonlyMap<string, Ty>, callSpan: Span): ModelInstance | null {
    return this.blocks.instantiate(decl, module, args, callSpan);
  }

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

  /** Runs `body` with reports dropped. */
  quietly<T>(body: () => T): T {
    this.muted++;
    try {
      return body();
    } finally {
      this.muted--;
    }
  }

  /** Runs `body` outside any instantiation chain (no notes), generically or not; restores both after. */
  outsideInstantiations<T>(generic: boolean, body: () => T): T {
    const saved = this.stack.splice(0);
    const wasGeneric = this.genericMode;
    this.genericMode = generic;
    try {
      return body();
    } finally {
      this.stack.push(...saved);
      this.genericMode = wasGeneric;
    }
  }

  /** Runs `body` one instantiation deeper (null past the depth limit, reported). */
  withFrame<T>(frame: Frame, body: () => T): T | null {
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
    let ty: Ty;
    try {
      ty = this.outsideInstantiations(false, () => this.computeDeclType(module, decl));
    } finally {
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
        return unaryOperatorType(this, e.op, this.infer(e.operand, scope), e.loc);
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

  private inferBinary(e: BinaryExpr, scope: Scope): Ty {
    const left = this.infer(e.left, scope);
    if (e.op === '@' && left.k === 'model') return this.checkpointRef(e, left.model, scope);
    return binaryOperatorType(this, e, left, this.infer(e.right, scope));
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
      this.quietly(() => this.inferCallChecked(e, scope));
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
        return this.blocks.callBlock(callee.decl, e, scope);
      case 'fn':
        return this.blocks.callFn(callee.decl, e, scope);
      case 'model':
        return this.blocks.callModel(callee.model, e, scope);
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
  inferQuietly(args: readonly Argument[], scope: Scope): void {
    this.quietly(() => {
      for (const a of args) this.infer(a.value, scope);
    });
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
