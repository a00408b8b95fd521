/**
 * The lowering interpreter: evaluates checked recipe expressions with every
 * dimension concrete, emitting IR nodes for tensor work and computing
 * everything else (dims, numbers, models, settings) at compile time.
 * It runs only on recipes the checker accepted, so a failure here is a bug
 * (LoweringError), not a user diagnostic.
 */
import { SEED_STRIDE } from '../seeds.js';
import { dirname, resolve } from 'node:path';
import { DEFAULT_CHAT_TEMPLATE, type ChatTemplate } from '../../check/chatTemplate.js';
import type { Body, Expression, Parameter, Pattern, Subscript, TypeNode } from '../../language/ast.js';
import { BUILTINS, CONSTANTS, dtypeOf } from '../../check/builtins.js';
import type { ModuleInfo } from '../../check/modules.js';
import type { Ty } from '../../check/types.js';
import { constValue } from '../../check/dims.js';
import type { GraphBuilder } from '../builder.js';
import type { Value } from '../graph.js';
import type { DType } from '../tensor.js';
import { callTensorBuiltin, isTensorBuiltin } from './builtins.js';
import { tokenizerJsonPath } from '../../check/hfTokenizer.js';
import { pretrainedModel } from './pretrained.js';
import { joinPath, renameOwner, withAdapters, type Member, type ModelNode, type ModelTemplate, type ParamInfo, type Init } from './models.js';
import type { BatchMeanDivisors, TensorBuiltinHost } from './types.js';
import { asBool, asInt, asNumber, describeLV, LoweringError, type DatasetSpec, type LV, type TokenizerSpec } from './values.js';

/** Lexical scope: locals over a module's top-level names. */
export class Env {
  private readonly vars = new Map<string, LV>();
  constructor(
    readonly module: ModuleInfo,
    private readonly parent: Env | null = null,
  ) {}
  child(): Env {
    return new Env(this.module, this);
  }
  set(name: string, v: LV): void {
    this.vars.set(name, v);
  }
  local(name: string): LV | undefined {
    return this.vars.get(name) ?? this.parent?.local(name);
  }
}

function moduleValueKey(module: ModuleInfo, name: string): string {
  return `${module.absPath}\u0000${name}`;
}

/** Supplies the IR value of a parameter (a graph input, an initializer…); set by the stage lowering. */
export type ParamSource = (p: ParamInfo) => Value;

/**
 * Top-level values by module and name. Shared by the lowerers of one stage's
 * graphs, so every graph sees the same materialised models (the same parameters).
 */
export type ModuleValues = Map<string, LV>;

export class Lowerer implements TensorBuiltinHost {
  /** Counts dropout sites so each gets its own seed offset. */
  dropoutSites = 0;
  /** Per-step seed (i64 scalar) for dropout; null in graphs without randomness (dropout is then the identity). */
  seed: Value | null = null;
  /** Divisors of batch means under gradient accumulation (see TensorBuiltinHost.batchMeans). */
  batchMeans: BatchMeanDivisors | null = null;
  /**
   * How a matmul of an activation by a weight (a graph input [in, out]) is computed; null: plainly.
   * Quantization-aware training sets it (src/ir/lower/qat.ts) to multiply fake-quantized operands.
   */
  weightMatmul: ((x: Value, w: Value) => Value) | null = null;

  constructor(
    readonly b: GraphBuilder,
    public params: ParamSource,
    private readonly moduleValues: ModuleValues = new Map(),
  ) {}

  // ------------------------------------------------------------ names

  moduleValue(module: ModuleInfo, name: string): LV {
    const key = moduleValueKey(module, name);
    const cached = this.moduleValues.get(key);
    if (cached) return cached;
    const v = this.computeModuleValue(module, name);
    this.moduleValues.set(key, v);
    return v;
  }

  /**
   * Replaces a top-level value for every lowerer sharing these module values: a
   * stage's model as earlier stages left it (narrower after structured pruning).
   */
  setModuleValue(module: ModuleInfo, name: string, v: LV): void {
    this.moduleValues.set(moduleValueKey(module, name), v);
  }

  private computeModuleValue(module: ModuleInfo, name: string): LV {
    const decl = module.decls.get(name);
    if (decl) {
      switch (decl.kind) {
        case 'BlockDecl':
          return { k: 'block', decl, module };
        case 'FnDecl':
          return { k: 'fn', decl, module };
        case 'ModelDecl': {
          const v = this.eval(decl.value, new Env(module));
          if (v.k === 'template') return { k: 'model', m: this.materialize(v.t, '', name) };
          if (v.k === 'model') return { k: 'model', m: v.m.owner === name ? v.m : renameOwner(v.m, name) };
          throw new LoweringError(`model ${name}: expected a model, got ${describeLV(v)}`);
        }
        case 'TokenizerDecl':
          return this.eval(decl.value, new Env(module));
        case 'DatasetDecl': {
          const v = this.eval(decl.value, new Env(module));
          return v.k === 'dataset' ? { k: 'dataset', spec: { ...v.spec, name } } : v;
        }
      }
    }
    const imp = module.imports.get(name);
    if (imp?.kind === 'name') return this.moduleValue(imp.module, imp.name);
    if (imp?.kind === 'namespace') return { k: 'namespace', module: imp.module };
    if (name in BUILTINS) return { k: 'builtin', name };
    if (name in CONSTANTS) return { k: 'float', n: CONSTANTS[name]! };
    const dt = dtypeOf(name);
    if (dt) return { k: 'dtype', dtype: irDType(dt) };
    // Stages have their own namespace: a stage name here is `stage.output`.
    if (module.stages.has(name)) return { k: 'stage', name, module };
    throw new LoweringError(`unknown name '${name}' in ${module.path}`);
  }

  lookup(name: string, env: Env): LV {
    return env.local(name) ?? this.moduleValue(env.module, name);
  }

  // ------------------------------------------------------------ expressions

  /** Evaluates `e`; the IR nodes it emits carry its span (the innermost expression's, for nested ones). */
  eval(e: Expression, env: Env): LV {
    return this.b.at(e.loc, () => this.evalExpression(e, env));
  }

  private evalExpression(e: Expression, env: Env): LV {
    switch (e.kind) {
      case 'NumberLiteral':
        return e.isInteger ? { k: 'int', n: e.value } : { k: 'float', n: e.value };
      case 'StringLiteral':
        return { k: 'str', s: e.value };
      case 'BoolLiteral':
        return { k: 'bool', b: e.value };
      case 'NameExpr':
        return this.lookup(e.name, env);
      case 'ParenExpr':
        return this.eval(e.expression, env);
      case 'TupleExpr':
        return { k: 'tuple', items: e.elements.map((x) => this.eval(x, env)) };
      case 'ListExpr':
        return { k: 'list', items: e.elements.map((x) => this.eval(x, env)) };
      case 'UnaryExpr': {
        const v = this.eval(e.operand, env);
        if (e.op === '!') return { k: 'bool', b: !asBool(v, '!') };
        if (v.k === 'int' || v.k === 'float') return { k: v.k, n: -v.n };
        if (v.k === 'tensor') return { k: 'tensor', v: this.b.neg(v.v) };
        throw new LoweringError(`cannot negate ${describeLV(v)}`);
      }
      case 'BinaryExpr':
        return this.binary(e.op, e.left, e.right, env);
      case 'CallExpr':
        return this.call(e, env);
      case 'MemberExpr':
        return this.member(this.eval(e.object, env), e.member.name);
      case 'IndexExpr':
        return this.index(this.eval(e.object, env), e.subscripts, env);
      case 'ErrorExpr':
        throw new LoweringError('cannot lower an expression with a syntax error');
    }
  }

  private binary(op: string, leftExpr: Expression, rightExpr: Expression, env: Env): LV {
    const left = this.eval(leftExpr, env);
    if (op === '@' && (left.k === 'model' || left.k === 'template') && rightExpr.kind === 'NameExpr') {
      if (left.k !== 'model') throw new LoweringError('a checkpoint needs a declared model');
      // A model at a checkpoint is a copy with its own parameters (`policy@sft.…`), loaded from that stage.
      const stage = rightExpr.name;
      const m = copyModel(left.m, left.m.path, `${left.m.owner}@${stage}`, { model: left.m.owner, stage });
      return { k: 'model', m: { ...m, checkpoint: stage } };
    }
    if (op === '&&') return { k: 'bool', b: asBool(left, '&&') && asBool(this.eval(rightExpr, env), '&&') };
    if (op === '||') return { k: 'bool', b: asBool(left, '||') || asBool(this.eval(rightExpr, env), '||') };
    const right = this.eval(rightExpr, env);
    if (left.k === 'none' || right.k === 'none') {
      // An absent optional member is the identity for + - *.
      if (left.k === 'none' && op === '+') return right;
      if (right.k === 'none') return left;
      if (op === '-') return right.k === 'tensor' ? { k: 'tensor', v: this.b.neg(right.v) } : right;
      return right;
    }
    if ((left.k === 'int' || left.k === 'float') && (right.k === 'int' || right.k === 'float')) return numberOp(op, left, right);
    if (left.k === 'tensor' || right.k === 'tensor') return { k: 'tensor', v: this.tensorOp(op, left, right) };
    if (op === '==' || op === '!=') {
      const same = JSON.stringify(left) === JSON.stringify(right);
      return { k: 'bool', b: op === '==' ? same : !same };
    }
    throw new LoweringError(`cannot apply ${op} to ${describeLV(left)} and ${describeLV(right)}`);
  }

  /** A tensor or a number as a tensor; numbers take the other operand's dtype. */
  asTensor(v: LV, like: DType = 'f32'): Value {
    if (v.k === 'tensor') return v.v;
    if (v.k === 'int' || v.k === 'float') return this.b.scalar(v.n, like);
    if (v.k === 'bool') return this.b.scalar(v.b ? 1 : 0, 'bool');
    throw new LoweringError(`expected a tensor, got ${describeLV(v)}`);
  }

  private tensorOp(op: string, left: LV, right: LV): Value {
    const dtype = left.k === 'tensor' ? left.v.dtype : right.k === 'tensor' ? right.v.dtype : 'f32';
    const a = this.asTensor(left, dtype);
    const c = this.asTensor(right, dtype);
    const b = this.b;
    switch (op) {
      case '+':
        return b.add(a, c);
      case '-':
        return b.sub(a, c);
      case '*':
        return b.mul(a, c);
      case '/':
        return b.div(a, c);
      case '**':
        if (right.k !== 'tensor' && asNumber(right, '**') === 2) return b.mul(a, a);
        return b.pow(a, c);
      case '@':
        return this.matmul(a, c);
      case '<':
        return b.less(a, c);
      case '>':
        return b.greater(a, c);
      case '<=':
        return b.not(b.greater(a, c));
      case '>=':
        return b.not(b.less(a, c));
      case '==':
        return b.equal(a, c);
      case '!=':
        return b.not(b.equal(a, c));
    }
    throw new LoweringError(`operator ${op} is not defined on tensors`);
  }

  /**
   * `x @ w` with NumPy semantics. A batch of vectors times one matrix is done as a
   * single 2-D product, so its gradient is one product too (not one per batch row).
   */
  matmul(a: Value, w: Value): Value {
    const b = this.b;
    if (a.shape.length === 1 && w.shape.length === 1) return b.reshape(b.matmul(b.reshape(a, [1, a.shape[0]!]), b.reshape(w, [w.shape[0]!, 1])), []);
    if (a.shape.length === 1) {
      const out = b.matmul(b.reshape(a, [1, a.shape[0]!]), w);
      return b.reshape(out, [...out.shape.slice(0, -2), out.shape[out.shape.length - 1]!]);
    }
    if (w.shape.length === 1) {
      const out = b.matmul(a, b.reshape(w, [w.shape[0]!, 1]));
      return b.reshape(out, out.shape.slice(0, -1));
    }
    const byWeight = (x: Value): Value => (this.weightMatmul && w.producer === null && w.shape.length === 2 ? this.weightMatmul(x, w) : b.matmul(x, w));
    if (w.shape.length === 2 && a.shape.length > 2) {
      const k = a.shape[a.shape.length - 1]!;
      const rows = a.shape.slice(0, -1);
      const flat = byWeight(b.reshape(a, [rows.reduce((x, y) => x * y, 1), k]));
      return b.reshape(flat, [...rows, w.shape[1]!]);
    }
    return byWeight(a);
  }

  member(obj: LV, name: string): LV {
    switch (obj.k) {
      case 'tokenizer':
        if (name === 'vocab') return { k: 'int', n: obj.spec.vocab };
        break;
      case 'model': {
        const m = obj.m;
        const member = m.members.get(name);
        if (member) return this.memberValue(member);
        const arg = m.args.get(name);
        if (arg) return arg;
        break;
      }
      case 'template': {
        if (obj.t.k === 'block') {
          const arg = obj.t.args.get(name);
          if (arg) return arg;
        }
        break;
      }
      case 'record': {
        const f = obj.fields.get(name);
        if (f) return f;
        break;
      }
      case 'dataset':
        if (name === 'val' || name === 'prompts' || name === 'train') return { k: 'dataset', spec: { ...obj.spec, part: name } };
        break;
      case 'namespace':
        return this.moduleValue(obj.module, name);
      case 'stage':
        if (name === 'output') return this.generatedDataset(obj.module, obj.name);
        break;
      default:
        break;
    }
    throw new LoweringError(`${describeLV(obj)} has no member '${name}'`);
  }

  /**
   * `NAME.output`: the data generate stage NAME writes, in its `format` (default
   * preference), read with the tokenizer and length of its prompts. Its file is the
   * stage's `out`, or one the run folder holds (late-bound: empty path), so a stage that
   * trains on it compiles before the data exists.
   */
  private generatedDataset(module: ModuleInfo, stage: string): LV {
    const decl = module.stages.get(stage)!;
    const setting = (n: string) => decl.items.find((i): i is Extract<typeof i, { kind: 'Setting' }> => i.kind === 'Setting' && i.name.name === n);
    const prompts = setting('prompts');
    const source = prompts ? this.eval(prompts.value, new Env(module)) : null;
    if (source?.k !== 'dataset') throw new LoweringError(`stage ${stage}: its prompts are not a dataset`);
    const format = setting('format')?.value;
    const out = setting('out') ? this.eval(setting('out')!.value, new Env(module)) : null;
    return {
      k: 'dataset',
      spec: {
        name: `${stage}.output`,
        format: format?.kind === 'NameExpr' ? (format.name as DatasetSpec['format']) : 'preference',
        path: out?.k === 'str' ? resolve(dirname(module.absPath), out.s) : '',
        tokenizer: source.spec.tokenizer,
        seqLen: source.spec.seqLen,
        split: 1,
        part: 'train',
        chatTemplate: null,
        producedBy: stage,
      },
    };
  }

  memberValue(member: Member): LV {
    if (member.k === 'param') return { k: 'tensor', v: this.params(member.p) };
    if (member.k === 'model') return { k: 'model', m: member.m };
    return { k: 'none' };
  }

  private index(obj: LV, subscripts: readonly Subscript[], env: Env): LV {
    if (obj.k === 'tuple' || obj.k === 'list') {
      const s = subscripts[0];
      if (subscripts.length !== 1 || s?.kind !== 'IndexSubscript') throw new LoweringError('a tuple takes one index');
      const i = asInt(this.eval(s.index, env), 'index');
      const item = obj.items[i < 0 ? obj.items.length + i : i];
      if (!item) throw new LoweringError(`index ${i} is out of range`);
      return item;
    }
    if (obj.k !== 'tensor') throw new LoweringError(`cannot index ${describeLV(obj)}`);
    const x = obj.v;
    const rank = x.shape.length;
    const explicit = subscripts.filter((s) => s.kind !== 'EllipsisSubscript').length;
    const starts: number[] = [];
    const ends: number[] = [];
    const axes: number[] = [];
    const dropped: number[] = [];
    let axis = 0;
    for (const s of subscripts) {
      if (s.kind === 'EllipsisSubscript') {
        axis += rank - explicit;
        continue;
      }
      const dim = x.shape[axis]!;
      if (s.kind === 'IndexSubscript') {
        let i = asInt(this.eval(s.index, env), 'index');
        if (i < 0) i += dim;
        starts.push(i);
        ends.push(i + 1);
        axes.push(axis);
        dropped.push(axis);
      } else {
        const norm = (v: number): number => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
        const start = s.start ? norm(asInt(this.eval(s.start, env), 'slice start')) : 0;
        const end = s.end ? norm(asInt(this.eval(s.end, env), 'slice end')) : dim;
        if (start !== 0 || end !== dim) {
          starts.push(start);
          ends.push(end);
          axes.push(axis);
        }
      }
      axis++;
    }
    let out = axes.length ? this.b.slice(x, starts, ends, axes) : x;
    if (dropped.length) out = this.b.reshape(out, out.shape.filter((_, i) => !dropped.includes(i)));
    return { k: 'tensor', v: out };
  }

  // ------------------------------------------------------------ calls

  private call(e: Extract<Expression, { kind: 'CallExpr' }>, env: Env): LV {
    const callee = this.eval(e.callee, env);
    switch (callee.k) {
      case 'builtin':
        return this.callBuiltin(callee.name, e, env);
      case 'block': {
        const args = this.bindParams(callee.decl.params, e, env, callee.module);
        return { k: 'template', t: { k: 'block', decl: callee.decl, module: callee.module, args } };
      }
      case 'fn': {
        const fenv = new Env(callee.module);
        const args = this.bindParams(callee.decl.params, e, env, callee.module);
        for (const p of callee.decl.params) this.bindTyped(fenv, p, args.get(p.name.name)!);
        return this.evalBody(callee.decl.body, fenv);
      }
      case 'model':
        return this.callModel(callee.m, e.args.map((a) => this.eval(a.value, env)));
      default:
        throw new LoweringError(`cannot call ${describeLV(callee)}`);
    }
  }

  /** Binds a call's arguments to declared parameters: positional, then named, then defaults. */
  private bindParams(params: readonly Parameter[], e: Extract<Expression, { kind: 'CallExpr' }>, env: Env, declModule: ModuleInfo): Map<string, LV> {
    const bound = new Map<string, LV>();
    let position = 0;
    for (const a of e.args) {
      const name = a.label ? a.label.name : params[position++]?.name.name;
      if (!name) throw new LoweringError('too many arguments');
      bound.set(name, this.eval(a.value, env));
    }
    const defaults = new Env(declModule);
    for (const p of params) {
      const v = bound.get(p.name.name);
      if (v) defaults.set(p.name.name, v);
      else if (p.default) {
        const d = this.eval(p.default, defaults);
        bound.set(p.name.name, d);
        defaults.set(p.name.name, d);
      } else throw new LoweringError(`missing argument '${p.name.name}'`);
    }
    return bound;
  }

  private callBuiltin(name: string, e: Extract<Expression, { kind: 'CallExpr' }>, env: Env): LV {
    const spec = BUILTINS[name]!;
    const args = new Map<string, LV>();
    let position = 0;
    for (const a of e.args) {
      const p = a.label ? spec.params.find((q) => q.name === a.label!.name) : spec.params[position++];
      if (!p) throw new LoweringError(`${name}: unexpected argument`);
      if (p.mode === 'symbol' && a.value.kind === 'NameExpr') args.set(p.name, { k: 'symbol', name: a.value.name });
      else if (p.mode === 'symbols' && a.value.kind === 'ListExpr') {
        args.set(p.name, { k: 'list', items: a.value.elements.map((x) => ({ k: 'symbol', name: x.kind === 'NameExpr' ? x.name : '?' }) as LV) });
      } else args.set(p.name, this.eval(a.value, env));
    }
    for (const p of spec.params) if (!args.has(p.name) && p.default) args.set(p.name, tyToLV(p.default));
    if (isTensorBuiltin(name)) return callTensorBuiltin(this, name, args);
    return this.recipeBuiltin(name, args, env);
  }

  private recipeBuiltin(name: string, args: Map<string, LV>, env: Env): LV {
    const base = dirname(env.module.absPath);
    switch (name) {
      case 'chars':
      case 'bytes':
      case 'hf': {
        const specials = (args.get('specials') as { items?: LV[] } | undefined)?.items?.map((s) => (s as { name: string }).name) ?? [];
        const alphabet = name === 'chars' ? (args.get('alphabet') as { s: string }).s : null;
        const path = name === 'hf' ? resolve(base, tokenizerJsonPath((args.get('path') as { s: string }).s)) : null;
        const size = name === 'chars' ? new Set([...alphabet!]).size : name === 'bytes' ? 256 : tokenizerVocab(env.module, path!);
        const spec: TokenizerSpec = { kind: name, alphabet, specials, path, vocab: size + specials.length };
        return { k: 'tokenizer', spec };
      }
      case 'text':
      case 'jsonl': {
        const tok = args.get('tokenizer');
        if (tok?.k !== 'tokenizer') throw new LoweringError(`${name}: expected a tokenizer`);
        const len = name === 'text' ? args.get('block') : args.get('max_len');
        const format = name === 'text' ? 'text' : (args.get('format') as { name: DatasetSpec['format'] }).name;
        const spec: DatasetSpec = {
          name: '',
          format,
          path: resolve(base, (args.get('path') as { s: string }).s),
          tokenizer: tok.spec,
          seqLen: len && len.k !== 'none' ? asInt(len, 'length') : null,
          split: asNumber(args.get('split') ?? { k: 'float', n: 1 }, 'split'),
          part: 'train',
          chatTemplate: format === 'chat' ? chatTemplate(args.get('template')) : null,
          producedBy: null,
        };
        return { k: 'dataset', spec };
      }
      case 'stack': {
        const inner = args.get('block')!;
        if (inner.k !== 'template') throw new LoweringError('stack: expected a block instance');
        return { k: 'template', t: { k: 'stack', n: asInt(args.get('n')!, 'stack'), inner: inner.t } };
      }
      case 'lora': {
        const m = args.get('model')!;
        if (m.k !== 'model') throw new LoweringError('lora: expected a model');
        const targets = new Set((args.get('targets') as { items?: LV[] } | undefined)?.items?.map((t) => (t as { name: string }).name) ?? []);
        const rank = asInt(args.get('rank')!, 'rank');
        return { k: 'model', m: withAdapters(m.m, rank, asNumber(args.get('alpha')!, 'alpha'), asNumber(args.get('dropout')!, 'dropout'), targets) };
      }
      case 'pretrained':
        return { k: 'model', m: pretrainedModel((t) => this.materialize(t, '', ''), env.module, resolve(base, (args.get('path') as { s: string }).s)) };
      case 'frozen': {
        const m = args.get('model')!;
        if (m.k === 'model') return { k: 'model', m: { ...m.m, frozen: true } };
        throw new LoweringError('frozen: expected a model');
      }
      default:
        return { k: 'call', name, args };
    }
  }

  // ------------------------------------------------------------ models

  /** Gives a template parameters, named under `path` within the recipe model `owner`. */
  materialize(t: ModelTemplate, path: string, owner: string): ModelNode {
    if (t.k === 'stack') {
      const copies = Array.from({ length: t.n }, (_, i) => this.materialize(t.inner, joinPath(path, String(i)), owner));
      return { path, owner, kind: 'stack', decl: null, module: null, args: new Map([['n', { k: 'int', n: t.n }]]), members: new Map(), forward: null, copies, frozen: false, checkpoint: null };
    }
    const env = new Env(t.module);
    for (const [k, v] of t.args) env.set(k, v);
    const members = new Map<string, Member>();
    let forward = null;
    for (const m of t.decl.members) {
      if (m.kind === 'ForwardMember') {
        forward = m;
        continue;
      }
      if (m.condition && !asBool(this.eval(m.condition, env), 'condition')) {
        members.set(m.name.name, { k: 'none' });
        env.set(m.name.name, { k: 'none' });
        continue;
      }
      const memberPath = joinPath(path, m.name.name);
      if (m.kind === 'ParamMember') {
        const { dtype, shape } = this.concreteType(m.type, env);
        const initCall = this.eval(m.init, env);
        const p: ParamInfo = { name: memberPath, dtype, shape, init: this.init(initCall), owner, decay: declaredDecay(initCall, shape) };
        members.set(m.name.name, { k: 'param', p });
      } else {
        const v = this.eval(m.value, env);
        let model: ModelNode;
        if (v.k === 'template') model = this.materialize(v.t, memberPath, owner);
        else if (v.k === 'model') model = copyModel(v.m, memberPath, owner);
        else throw new LoweringError(`${memberPath}: expected a model, got ${describeLV(v)}`);
        members.set(m.name.name, { k: 'model', m: model });
        env.set(m.name.name, { k: 'model', m: model });
      }
    }
    return { path, owner, kind: 'block', decl: t.decl, module: t.module, args: t.args, members, forward, copies: [], frozen: false, checkpoint: null };
  }

  private init(v: LV): Init {
    if (v.k !== 'call') throw new LoweringError(`a parameter initialiser must be normal(...), uniform(...), zeros() or ones(), got ${describeLV(v)}`);
    switch (v.name) {
      case 'normal':
        return { kind: 'normal', std: asNumber(v.args.get('std')!, 'std') };
      case 'uniform':
        return { kind: 'uniform', bound: asNumber(v.args.get('bound')!, 'bound') };
      case 'zeros':
        return { kind: 'zeros' };
      case 'ones':
        return { kind: 'ones' };
    }
    throw new LoweringError(`unknown initialiser ${v.name}`);
  }

  /** Runs a model's forward pass. */
  callModel(m: ModelNode, args: readonly LV[]): LV {
    const scope = m.path.split('.').pop() || m.owner;
    if (m.kind === 'stack') {
      let x = args[0]!;
      this.b.scoped(scope, () => {
        for (const copy of m.copies) x = this.callModel(copy, [x]);
      });
      return x;
    }
    const fwd = m.forward;
    if (!fwd) throw new LoweringError(`${m.path || m.owner} has no forward`);
    const env = new Env(m.module!);
    for (const [k, v] of m.args) env.set(k, v);
    for (const [k, member] of m.members) env.set(k, member.k === 'model' ? { k: 'model', m: member.m } : member.k === 'none' ? { k: 'none' } : { k: 'tensor', v: this.params(member.p) });
    fwd.params.forEach((p, i) => this.bindTyped(env, p, args[i] ?? this.evalDefault(p, env)));
    return this.b.scoped(scope, () => {
      const y = this.evalBody(fwd.body, env);
      return m.adapter ? this.addAdapter(m, args[0]!, y) : y;
    });
  }

  /** y + scale · (dropout(x) @ lora_a) @ lora_b. */
  private addAdapter(m: ModelNode, x: LV, y: LV): LV {
    const a = m.members.get('lora_a');
    const b = m.members.get('lora_b');
    if (x.k !== 'tensor' || y.k !== 'tensor' || a?.k !== 'param' || b?.k !== 'param') throw new LoweringError(`lora on ${m.path}: expected a tensor layer`);
    let input = x.v;
    if (m.adapter!.dropout > 0 && this.seed) input = this.b.dropout(input, this.b.add(this.seed, this.b.scalar(SEED_STRIDE * ++this.dropoutSites, 'i64')), m.adapter!.dropout);
    const delta = this.matmul(this.matmul(input, this.params(a.p)), this.params(b.p));
    return { k: 'tensor', v: this.b.add(y.v, this.b.mul(delta, this.b.scalar(m.adapter!.scale))) };
  }

  private evalDefault(p: Parameter, env: Env): LV {
    if (!p.default) throw new LoweringError(`missing argument '${p.name.name}'`);
    return this.eval(p.default, env);
  }

  /** Binds a parameter and the dimension names of its declared type (`x: f32[B, T, d]` binds B and T). */
  private bindTyped(env: Env, p: Parameter, v: LV): void {
    env.set(p.name.name, v);
    if (!p.type || p.type.kind !== 'TensorTypeNode' || !p.type.dims || v.k !== 'tensor') return;
    const dims = p.type.dims;
    const ell = dims.findIndex((d) => d.kind === 'EllipsisDim');
    const shape = v.v.shape;
    dims.forEach((d, i) => {
      if (d.kind !== 'NameExpr') return;
      const axis = ell >= 0 && i > ell ? shape.length - (dims.length - i) : i;
      if (env.local(d.name) === undefined && axis >= 0 && axis < shape.length) env.set(d.name, { k: 'int', n: shape[axis]! });
    });
  }

  evalBody(body: Body, env: Env): LV {
    const local = env.child();
    for (const s of body.statements) this.bindPattern(local, s.pattern, this.eval(s.value, local));
    return this.eval(body.result, local);
  }

  private bindPattern(env: Env, p: Pattern, v: LV): void {
    if (p.kind === 'NamePattern') {
      env.set(p.name.name, v);
      return;
    }
    if (v.k !== 'tuple' && v.k !== 'list') throw new LoweringError('cannot destructure a non-tuple');
    p.elements.forEach((q, i) => this.bindPattern(env, q, v.items[i]!));
  }

  concreteType(t: TypeNode, env: Env): { dtype: DType; shape: number[] } {
    if (t.kind !== 'TensorTypeNode') throw new LoweringError('expected a tensor type');
    const dt = dtypeOf(t.name.name);
    if (!dt) throw new LoweringError(`unknown dtype ${t.name.name}`);
    const shape = (t.dims ?? []).map((d) => {
      if (d.kind === 'EllipsisDim') throw new LoweringError('a parameter shape cannot contain ...');
      return asInt(this.eval(d, env), 'dimension');
    });
    return { dtype: irDType(dt), shape };
  }
}

/**
 * A copy of a model with new parameter names: a model used as a member of
 * another (`embed = base.embed`), or a model at a checkpoint (`policy @ sft`).
 * Weights come from `checkpoint` when given, else from where the source's come from.
 */
function copyModel(src: ModelNode, path: string, owner: string, checkpoint: { model: string; stage: string } | null = null): ModelNode {
  const members = new Map<string, Member>();
  const init = (p: ParamInfo): Init =>
    p.init.kind === 'checkpoint' || (p.init.kind === 'pretrained' && !checkpoint) ? p.init : checkpoint ? { kind: 'checkpoint', model: checkpoint.model, stage: checkpoint.stage, name: p.name } : { kind: 'copy', from: p };
  for (const [k, m] of src.members) {
    if (m.k === 'param') members.set(k, { k: 'param', p: { ...m.p, name: joinPath(path, k), owner, init: init(m.p) } });
    else if (m.k === 'model') members.set(k, { k: 'model', m: copyModel(m.m, joinPath(path, k), owner, checkpoint) });
    else members.set(k, m);
  }
  const copies = src.copies.map((c, i) => copyModel(c, joinPath(path, String(i)), owner, checkpoint));
  return { ...src, path, owner, members, copies, frozen: false };
}

function numberOp(op: string, a: { k: 'int' | 'float'; n: number }, b: { k: 'int' | 'float'; n: number }): LV {
  const ints = a.k === 'int' && b.k === 'int';
  const num = (n: number, int = ints): LV => (int && Number.isInteger(n) ? { k: 'int', n } : { k: 'float', n });
  switch (op) {
    case '+':
      return num(a.n + b.n);
    case '-':
      return num(a.n - b.n);
    case '*':
      return num(a.n * b.n);
    case '/':
      return num(a.n / b.n);
    case '%':
      return num(a.n % b.n);
    case '**':
      return num(a.n ** b.n, ints && b.n >= 0);
    case '<':
      return { k: 'bool', b: a.n < b.n };
    case '<=':
      return { k: 'bool', b: a.n <= b.n };
    case '>':
      return { k: 'bool', b: a.n > b.n };
    case '>=':
      return { k: 'bool', b: a.n >= b.n };
    case '==':
      return { k: 'bool', b: a.n === b.n };
    case '!=':
      return { k: 'bool', b: a.n !== b.n };
  }
  throw new LoweringError(`operator ${op} is not defined on numbers`);
}

/** A checker default value (a Ty constant) as a lowering value. */
export function tyToLV(t: Ty): LV {
  switch (t.k) {
    case 'float':
      return { k: 'float', n: t.value ?? NaN };
    case 'int': {
      const v = t.value ? constValue(t.value) : null;
      if (v === null) throw new LoweringError('a default dimension must be constant');
      return { k: 'int', n: v };
    }
    case 'bool':
      return { k: 'bool', b: t.value ?? false };
    case 'str':
      return { k: 'str', s: t.value ?? '' };
    case 'tuple':
      return { k: 'tuple', items: t.elements.map(tyToLV) };
    case 'list':
      return { k: 'list', items: t.elements.map(tyToLV) };
    case 'none':
      return { k: 'none' };
    default:
      throw new LoweringError(`unsupported default of kind ${t.k}`);
  }
}

/** The IR dtype of a recipe dtype; f16/bf16 tensors are computed in f32 during training. */
export function irDType(d: string): DType {
  if (d === 'i64' || d === 'i32') return 'i64';
  if (d === 'bool') return 'bool';
  return 'f32';
}

/** The strings of `template: chat_template(...)` (its defaults filled in), or the default template. */
function chatTemplate(v: LV | undefined): ChatTemplate {
  if (!v || v.k === 'none') return DEFAULT_CHAT_TEMPLATE;
  if (v.k !== 'call' || v.name !== 'chat_template') throw new LoweringError(`template: expected chat_template(...), got ${describeLV(v)}`);
  const text = (field: keyof ChatTemplate): string => {
    const s = v.args.get(field);
    if (s?.k !== 'str') throw new LoweringError(`chat_template: '${field}' must be a string`);
    return s.s;
  };
  return { system: text('system'), user: text('user'), assistant: text('assistant'), end: text('end') };
}

/** The weight-decay flag a parameter declaration gives: `decay:` of its initialiser, else decay when it has two or more axes. */
function declaredDecay(init: LV, shape: readonly number[]): boolean {
  const explicit = init.k === 'call' ? init.args.get('decay') : undefined;
  return explicit && explicit.k !== 'none' ? asBool(explicit, 'decay') : shape.length >= 2;
}

/** A tokenizer file's vocabulary size, as the checker read it (lowering reads no files). */
function tokenizerVocab(module: ModuleInfo, path: string): number {
  const size = module.facts.tokenizerVocab.get(path);
  if (size === undefined) throw new LoweringError(`the checker did not read the tokenizer file ${path}`);
  return size;
}
