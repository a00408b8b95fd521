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
