/**
 * Models during lowering. A template is a model description with its block
 * arguments bound (`MLP(d, 4 * d)`); materialising it at a path gives every
 * parameter a name (`blocks.2.attn.qkv.w`), a concrete shape and an
 * initialiser. `stack(n, block)` materialises n independent copies.
 */
import type { BlockDecl, ForwardMember } from '../../language/ast.js';
import type { ModuleInfo } from '../../check/modules.js';
import type { DType } from '../tensor.js';
import type { LV } from './values.js';

export type ModelTemplate =
  | { readonly k: 'block'; readonly decl: BlockDecl; readonly module: ModuleInfo; readonly args: ReadonlyMap<string, LV> }
  | { readonly k: 'stack'; readonly n: number; readonly inner: ModelTemplate };

export type Init =
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'uniform'; readonly bound: number }
  | { readonly kind: 'zeros' }
  | { readonly kind: 'ones' }
  /** Starts from another model's initial value (a head built on a model with no checkpoint). */
  | { readonly kind: 'copy'; readonly from: ParamInfo }
  /** Starts from a stage's final checkpoint of a model (`policy @ sft`, or the stage a model was last trained in). */
  | { readonly kind: 'checkpoint'; readonly model: string; readonly stage: string; readonly name: string };

export interface ParamInfo {
  /** Relative to its recipe-level model: `blocks.0.attn.qkv.w`. */
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly init: Init;
  /** The recipe-level model it belongs to. */
  readonly owner: string;
  /** A LoRA adapter matrix: the only parameters a LoRA model trains. */
  readonly adapter?: boolean;
}

export type Member = { readonly k: 'param'; readonly p: ParamInfo } | { readonly k: 'model'; readonly m: ModelNode } | { readonly k: 'none' };

export interface ModelNode {
  readonly path: string;
  readonly owner: string;
  readonly kind: 'block' | 'stack';
  readonly decl: BlockDecl | null;
  readonly module: ModuleInfo | null;
  readonly args: ReadonlyMap<string, LV>;
  readonly members: ReadonlyMap<string, Member>;
  readonly forward: ForwardMember | null;
  readonly copies: readonly ModelNode[];
  readonly frozen: boolean;
  /** The stage whose checkpoint this model starts from (`gpt @ sft`), if any. */
  readonly checkpoint: string | null;
  /** LoRA on this submodule: its output gains scale · (x @ lora_a) @ lora_b (members of the same names). */
  readonly adapter?: { readonly scale: number; readonly dropout: number };
  /** A LoRA model: only adapter matrices are trained. */
  readonly adapted?: boolean;
}

/** Every parameter of a model, in declaration order. */
export function modelParams(m: ModelNode): ParamInfo[] {
  const out: ParamInfo[] = [];
  const walk = (n: ModelNode): void => {
    if (n.kind === 'stack') {
      for (const c of n.copies) walk(c);
      return;
    }
    for (const member of n.members.values()) {
      if (member.k === 'param') out.push(member.p);
      else if (member.k === 'model') walk(member.m);
    }
  };
  walk(m);
  return out;
}

export function joinPath(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

/**
 * LoRA (Hu et al., 2021): every submodule named in `targets` (a layer with a weight
 * `w: [in, out]`) gets a rank-r update, x @ A @ B · alpha / r, with A [in, r] drawn
 * uniform(±1/√in) as PEFT does and B [r, out] zero, so the adapted model starts out
 * computing exactly what the base does.
 */
export function withAdapters(m: ModelNode, rank: number, alpha: number, dropout: number, targets: ReadonlySet<string>): ModelNode {
  const walk = (n: ModelNode, name: string): ModelNode => {
    const members = new Map<string, Member>();
    for (const [k, member] of n.members) members.set(k, member.k === 'model' ? { k: 'model', m: walk(member.m, k) } : member);
    const copies = n.copies.map((c, i) => walk(c, String(i)));
    if (!targets.has(name) || n.kind !== 'block') return { ...n, members, copies };
    const w = n.members.get('w');
    if (w?.k !== 'param' || w.p.shape.length !== 2) throw new Error(`lora: ${n.path} has no weight w: [in, out] to adapt`);
    const [inp, out] = w.p.shape as [number, number];
    const param = (suffix: string, shape: number[], init: Init): ParamInfo => ({ name: joinPath(n.path, suffix), dtype: 'f32', shape, init, owner: n.owner, adapter: true });
    members.set('lora_a', { k: 'param', p: param('lora_a', [inp, rank], { kind: 'uniform', bound: 1 / Math.sqrt(inp) }) });
    members.set('lora_b', { k: 'param', p: param('lora_b', [rank, out], { kind: 'zeros' }) });
    return { ...n, members, copies, adapter: { scale: alpha / rank, dropout } };
  };
  return { ...walk(m, m.path), adapted: true, frozen: false };
}

/** The same model under another recipe-level name (`model adapted = lora(...)`): parameters renamed, weights unchanged. */
export function renameOwner(m: ModelNode, owner: string): ModelNode {
  const members = new Map<string, Member>();
  for (const [k, member] of m.members) {
    if (member.k === 'param') members.set(k, { k: 'param', p: { ...member.p, owner } });
    else if (member.k === 'model') members.set(k, { k: 'model', m: renameOwner(member.m, owner) });
    else members.set(k, member);
  }
  return { ...m, owner, members, copies: m.copies.map((c) => renameOwner(c, owner)) };
}
