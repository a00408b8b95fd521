/**
 * Blocks → models and calls of functions: a block call binds its arguments
 * and instantiates the block (where clauses, params, submodules, the forward
 * signature and body), memoised per block and arguments; a function call is
 * checked against its signature, or per argument types when it is not fully
 * typed. Every block and fully typed function is also checked once
 * generically, with symbols for its dimensions, so its errors are found
 * without a use and its instantiations stay quiet when it has some.
 */
import type { Argument, BlockDecl, Body, CallExpr, Expression, FnDecl, ForwardMember, Parameter, Pattern, Span, TypeNode } from '../language/ast.js';
import type { DiagnosticBag } from '../language/diagnostics.js';
import { addDims, constDim, formatDim, isInvalidConstant, symDim, type Dim } from './dims.js';
import { exprText } from './exprText.js';
import type { ModuleInfo } from './modules.js';
import type { Reporter } from './operatorTypes.js';
import { Scope } from './scope.js';
import { elementCount } from './shapes.js';
import { ERROR, NONE, describeKind, formatType, shapesEqual, type CheckpointRef, type ForwardSignature, type ModelInstance, type ModelMember, type Ty } from './types.js';
import { newBindings, substitute, unify } from './unify.js';

/** One step of the instantiation chain, for notes. */
export interface Frame {
  readonly span: Span;
  readonly what: string;
}

/** What instantiation needs from the checker that coordinates it (the Checker implements it). */
export interface InstantiationContext extends Reporter {
  readonly bag: DiagnosticBag;
  /** True while a block or fn is checked generically (with symbolic arguments). */
  readonly generic: boolean;
  /** The loaded modules, for finding the module that declares a block or fn. */
  readonly allModules: () => Iterable<ModuleInfo>;
  infer(e: Expression, scope: Scope): Ty;
  resolveType(node: TypeNode, scope: Scope, free: Set<string> | null): Ty;
  bindArguments(params: readonly { name: string; optional: boolean }[], args: readonly Argument[], what: string, callSpan: Span): Map<string, Argument> | null;
  /** Infers arguments of a call whose binding failed, reporting nothing. */
  inferQuietly(args: readonly Argument[], scope: Scope): void;
  hasSyntaxErrorIn(span: Span): boolean;
  /** Runs `body` with reports dropped. */
  quietly<T>(body: () => T): T;
  /** Runs `body` one instantiation deeper (null past the depth limit, reported). */
  withFrame<T>(frame: Frame, body: () => T): T | null;
  /** Runs `body` outside any instantiation chain, generically or not. */
  outsideInstantiations<T>(generic: boolean, body: () => T): T;
}

/** Instantiates blocks and checks function calls for the checker; holds the memo tables. */
export class Instantiator {
  private readonly instances = new Map<BlockDecl, Map<string, ModelInstance>>();
  private readonly fnResults = new Map<FnDecl, Map<string, Ty>>();
  /** Blocks and functions whose generic check reported errors: their instantiations stay quiet. */
  private readonly failedGeneric = new Set<BlockDecl | FnDecl>();
  private readonly genericChecked = new Set<BlockDecl>();
  /** Each block instantiated with symbolic arguments, for `ptr types`. */
  readonly genericInstances = new Map<BlockDecl, ModelInstance>();
  private readonly declModules = new Map<object, ModuleInfo>();

  constructor(private readonly cx: InstantiationContext) {}

  // ------------------------------------------------------------ blocks → models

  /** `Block(args)`: binds and checks the arguments, then instantiates the block into a model. */
  callBlock(decl: BlockDecl, e: CallExpr, scope: Scope): Ty {
    const what = decl.name.name;
    const params = decl.params.map((p) => ({ name: p.name.name, optional: p.default !== null }));
    const bound = this.cx.bindArguments(params, e.args, what, e.loc);
    if (!bound) {
      this.cx.inferQuietly(e.args, scope);
      return ERROR;
    }
    const argTypes = new Map<string, Ty>();
    let ok = true;
    for (const a of e.args) {
      const t = this.cx.infer(a.value, scope);
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
      if (t === undefined) t = p.default ? this.cx.infer(p.default, this.paramScope(declScope, args)) : ERROR;
      if (p.type) {
        const want = this.cx.resolveType(p.type, declScope, null);
        const mismatch = unify(want, t, newBindings(new Set()));
        if (mismatch) {
          this.cx.report('argument-type', `${what}: argument '${p.name.name}' ${mismatch}`, argExpr?.value.loc ?? e.loc, {
            related: [{ message: `parameter '${p.name.name}' is declared here`, span: p.loc }],
          });
          return ERROR;
        }
        if (p.type.kind === 'TensorTypeNode' && p.type.name.name === 'dim' && t.k === 'int' && t.value && isInvalidConstant(t.value)) {
          this.cx.report('argument-type', `${what}: '${p.name.name}' must be a non-negative whole dimension, but it is ${formatDim(t.value)}`, argExpr?.value.loc ?? e.loc);
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
      for (const m of this.cx.allModules()) for (const d of m.recipe.declarations) this.declModules.set(d, m);
    }
    return this.declModules.get(decl) ?? hint;
  }

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
    const result = this.cx.withFrame({ span: callSpan, what: display }, () => this.buildInstance(decl, module, args, display, callSpan));
    if (result) memo.set(display, result);
    return result;
  }

  private buildInstance(decl: BlockDecl, module: ModuleInfo, args: ReadonlyMap<string, Ty>, display: string, callSpan: Span): ModelInstance | null {
    const scope = this.paramScope(new Scope(module), args);
    const quiet = !this.cx.generic && this.failedGeneric.has(decl);
    for (const w of decl.where) {
      const v = this.cx.infer(w, scope);
      if (v.k === 'bool' && v.value === false) {
        this.cx.report('where-violated', `${display} violates 'where ${exprText(w)}'${this.explainComparison(w, scope)}`, callSpan, {
          related: [{ message: 'the constraint is declared here', span: w.loc }],
        });
        return null;
      }
      if (v.k !== 'bool' && v.k !== 'error') this.cx.report('type-mismatch', `a where clause must be a condition, but ${exprText(w)} is ${describeKind(v)}`, w.loc);
    }
    // Quiet: a re-check of code whose generic check already failed.
    return quiet ? this.cx.quietly(() => this.buildMembers(decl, scope, args, display)) : this.buildMembers(decl, scope, args, display);
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
          this.cx.report('duplicate-forward', `block ${decl.name.name} has more than one forward`, m.loc);
          continue;
        }
        forward = this.forwardSignature(m, scope, display);
        continue;
      }
      const present = this.memberCondition(m.condition, scope);
      const name = m.name.name;
      if (members.has(name) || args.has(name)) {
        this.cx.report('duplicate-name', `'${name}' is already defined in block ${decl.name.name}`, m.name.loc);
        continue;
      }
      if (!present) {
        scope.define(name, NONE);
        continue;
      }
      if (m.kind === 'ParamMember') {
        const t = this.cx.resolveType(m.type, scope, null);
        const init = this.cx.infer(m.init, scope);
        if (init.k !== 'initializer' && init.k !== 'error') {
          this.cx.report('type-mismatch', `param '${name}' must be initialised with normal(std), uniform(bound), zeros() or ones(), but ${exprText(m.init)} is ${describeKind(init)}`, m.init.loc);
        }
        if (t.k !== 'tensor') {
          if (t.k !== 'error') this.cx.report('bad-type', `param '${name}' must be a tensor type like f32[d, d], not ${formatType(t)}`, m.type.loc);
          scope.define(name, ERROR);
          continue;
        }
        const count = elementCount(t.shape);
        if (!count) {
          this.cx.report('bad-type', `param '${name}' must have a fully known shape, not ${formatType(t)}`, m.type.loc);
        } else paramCount = addDims(paramCount, count);
        members.set(name, { k: 'param', type: t });
        scope.define(name, t);
      } else {
        const t = this.cx.infer(m.value, scope);
        if (t.k === 'model') {
          members.set(name, { k: 'submodule', model: t.model });
          paramCount = addDims(paramCount, t.model.paramCount);
          checkpoints.push(...t.model.checkpoints);
        } else if (t.k !== 'error') {
          this.cx.report('type-mismatch', `member '${name}' must be a model (an instantiated block), but ${exprText(m.value)} is ${describeKind(t)}`, m.value.loc, {
            hint: t.k === 'block' ? `instantiate it: ${exprText(m.value)}(...)` : null,
          });
        }
        scope.define(name, t);
      }
    }
    if (!forward && !this.cx.hasSyntaxErrorIn(decl.loc)) {
      this.cx.report('missing-forward', `block ${decl.name.name} has no forward(...) -> Type`, decl.name.loc);
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
      const t = this.cx.infer(x, scope);
      const v = t.k === 'int' && t.value ? formatDim(t.value) : t.k === 'float' && t.value !== null ? String(t.value) : null;
      return v === null ? null : `${exprText(x)} is ${v}`;
    };
    const parts = [side(w.left), side(w.right)].filter((p): p is string => p !== null);
    return parts.length ? `: ${parts.join(', ')}` : '';
  }

  private memberCondition(cond: Expression | null, scope: Scope): boolean {
    if (!cond) return true;
    const c = this.cx.infer(cond, scope);
    if (c.k === 'bool') return c.value !== false;
    if (c.k !== 'error') this.cx.report('type-mismatch', `a member condition must be true or false, but ${exprText(cond)} is ${describeKind(c)}`, cond.loc);
    return true;
  }

  private forwardSignature(m: ForwardMember, blockScope: Scope, display: string): ForwardSignature | null {
    const free = new Set<string>();
    const sigScope = blockScope.child();
    const params = m.params.map((p) => ({ name: p.name.name, type: this.paramType(p, sigScope, free) }));
    const returns = this.cx.resolveType(m.returnType, sigScope, null);
    const bodyScope = sigScope.child();
    for (const p of params) bodyScope.define(p.name, p.type);
    for (const w of m.where) this.cx.infer(w, bodyScope);
    const result = this.checkBody(m.body, bodyScope);
    this.checkReturn(result, returns, m.body.result.loc, `forward of ${display}`, m.body);
    const checkWhere = m.where.length
      ? (bindings: ReadonlyMap<string, Dim>): string[] => {
          const s = blockScope.child();
          for (const sym of free) s.define(sym, { k: 'int', value: bindings.get(sym) ?? symDim(sym) });
          return m.where.flatMap((w) => {
            const v = this.cx.infer(w, s);
            return v.k === 'bool' && v.value === false ? [`where ${exprText(w)}${this.explainComparison(w, s)}`] : [];
          });
        }
      : null;
    return { params, returns, free, checkWhere, span: m.loc };
  }

  private paramType(p: Parameter, scope: Scope, free: Set<string>): Ty {
    if (!p.type) {
      this.cx.report('missing-type', `forward parameter '${p.name.name}' needs a type, like ${p.name.name}: f32[B, T, d]`, p.loc);
      return ERROR;
    }
    return this.cx.resolveType(p.type, scope, free);
  }

  /**
   * The type of a function parameter. A `dim` or `int` parameter becomes a
   * symbol of the signature (usable in later types: `x: f32[B, heads]`), bound per call.
   */
  private signatureParamType(p: Parameter, scope: Scope, free: Set<string>): Ty {
    const t = this.cx.resolveType(p.type!, scope, free);
    if (t.k !== 'int') return t;
    const symbolic: Ty = { k: 'int', value: symDim(p.name.name) };
    free.add(p.name.name);
    scope.define(p.name.name, symbolic);
    return symbolic;
  }

  private checkBody(body: Body, scope: Scope): Ty {
    for (const s of body.statements) this.bindPattern(s.pattern, this.cx.infer(s.value, scope), scope);
    return this.cx.infer(body.result, scope);
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
      this.cx.report('pattern-arity', `cannot unpack ${describeKind(t)} into ${p.elements.length} names`, p.loc);
      for (const x of p.elements) this.bindPattern(x, ERROR, scope);
      return;
    }
    p.elements.forEach((x, i) => this.bindPattern(x, t.elements[i]!, scope));
  }

  private checkReturn(result: Ty, declared: Ty, span: Span, what: string, body: Body): void {
    // A body the parser could not fully read has no reliable result type.
    if (result.k === 'error' || declared.k === 'error' || this.cx.hasSyntaxErrorIn(body.loc)) return;
    const ok =
      declared.k === 'tensor'
        ? (result.k === 'tensor' && result.dtype === declared.dtype && shapesEqual(result.shape, declared.shape)) ||
          ((result.k === 'float' || result.k === 'int') && declared.shape.dims.length === 0 && !declared.shape.ellipsis)
        : unify(declared, result, newBindings(new Set())) === null;
    if (!ok) {
      this.cx.report('return-type', `${what} returns ${formatType(result)} but is declared to return ${formatType(declared)}`, span);
    }
  }

  /** Calls a model's forward pass. */
  callModel(model: ModelInstance, e: CallExpr, scope: Scope): Ty {
    const argTypes = e.args.map((a) => this.cx.infer(a.value, scope));
    const f = model.forward;
    if (!f) return ERROR;
    const bound = this.cx.bindArguments(f.params.map((p) => ({ name: p.name, optional: false })), e.args, model.display, e.loc);
    if (!bound) return ERROR;
    const b = newBindings(f.free);
    for (const p of f.params) {
      const a = bound.get(p.name)!;
      const t = argTypes[e.args.indexOf(a)]!;
      const mismatch = unify(p.type, t, b);
      if (mismatch) {
        this.cx.report('argument-type', `${model.display}: input '${p.name}' ${mismatch}`, a.value.loc, {
          related: f.span ? [{ message: 'forward is declared here', span: f.span }] : [],
        });
        return ERROR;
      }
    }
    if (f.checkWhere) {
      for (const v of f.checkWhere(b.dims)) {
        this.cx.report('where-violated', `${model.display}: this call violates ${v}`, e.loc, {
          related: f.span ? [{ message: 'forward is declared here', span: f.span }] : [],
        });
        return ERROR;
      }
    }
    return substitute(f.returns, b);
  }

  // ------------------------------------------------------------ functions

  /** `fn(args)`: a fully typed function applies its signature; any other is checked with these arguments (memoised). */
  callFn(decl: FnDecl, e: CallExpr, scope: Scope): Ty {
    const what = decl.name.name;
    const argTypes = e.args.map((a) => this.cx.infer(a.value, scope));
    const bound = this.cx.bindArguments(decl.params.map((p) => ({ name: p.name.name, optional: p.default !== null })), e.args, what, e.loc);
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
      const t = a ? argTypes[e.args.indexOf(a)]! : p.default ? this.cx.infer(p.default, sigScope) : ERROR;
      if (p.type) {
        const want = this.signatureParamType(p, sigScope, free);
        const mismatch = unify(want, t, b);
        if (mismatch) {
          this.cx.report('argument-type', `${what}: argument '${p.name.name}' ${mismatch}`, a?.value.loc ?? e.loc, {
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
      result = substitute(this.cx.resolveType(decl.returnType!, sigScope, null), b);
    } else {
      const key = [...actuals].map(([k, v]) => `${k}: ${formatType(v)}`).join(', ');
      let memo = this.fnResults.get(decl);
      if (!memo) this.fnResults.set(decl, (memo = new Map()));
      const cached = memo.get(key);
      if (cached) return cached;
      const quiet = this.failedGeneric.has(decl);
      result =
        this.cx.withFrame({ span: e.loc, what: `${what}(${key})` }, () => {
          const body = new Scope(module).child();
          for (const [k, v] of inBody) body.define(k, v);
          for (const sym of free) body.define(sym, { k: 'int', value: symDim(sym) });
          if (quiet) return ERROR;
          const r = this.checkBody(decl.body, body);
          if (decl.returnType) {
            const declared = this.cx.resolveType(decl.returnType, body, null);
            this.checkReturn(r, declared, decl.body.result.loc, `${what}`, decl.body);
            return substitute(declared, b);
          }
          return substitute(r, b);
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
        this.cx.report('missing-type', `block parameter '${p.name.name}' needs a type (dim, int, float, bool, str, model)`, p.loc);
        return;
      }
      const t = this.cx.resolveType(p.type, scope, null);
      args.set(p.name.name, t.k === 'int' ? { k: 'int', value: symDim(p.name.name) } : t);
    }
    this.cx.outsideInstantiations(true, () => {
      const before = this.cx.bag.items.length;
      const instance = this.buildInstance(decl, module, args, `${decl.name.name}`, decl.name.loc);
      if (instance) this.genericInstances.set(decl, instance);
      if (this.cx.bag.items.length > before) this.failedGeneric.add(decl);
    });
  }

  /** Checks a fully typed function once with its signature's symbols. */
  checkFnGeneric(decl: FnDecl, module: ModuleInfo): void {
    if (!isGenericallyChecked(decl)) return;
    const scope = new Scope(module).child();
    const free = new Set<string>();
    for (const p of decl.params) scope.define(p.name.name, this.signatureParamType(p, scope, free));
    const before = this.cx.bag.items.length;
    const result = this.checkBody(decl.body, scope);
    if (decl.returnType) this.checkReturn(result, this.cx.resolveType(decl.returnType, scope, null), decl.body.result.loc, decl.name.name, decl.body);
    if (this.cx.bag.items.length > before) this.failedGeneric.add(decl);
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

