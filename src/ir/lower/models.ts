/**
 * Models during lowering. A template is a model description with its block
 * arguments bound (`MLP(d, 4 * d)`); materialising it at a path gives every
 * parameter a name (`blocks.2.attn.qkv.w`), a concrete shape and an
 * initialiser. `stack(n, block)` materialises n independent copies.
 */
import type { Init, Member, ModelNode, ParamInfo } from './types.js';

export type { Init, Member, ModelNode, ModelTemplate, ParamInfo } from './types.js';

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
    const param = (suffix: string, shape: number[], init: Init): ParamInfo => ({ name: joinPath(n.path, suffix), dtype: 'f32', shape, init, owner: n.owner, adapter: true, decay: true });
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
