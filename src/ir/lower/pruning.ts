/**
 * Structured pruning as lowering sees it: a model that went through `prune`
 * stages (structured) has fewer hidden units in its feed-forward layers, and
 * every later stage and deploy lowers it with those smaller shapes. The shapes
 * follow from the recipe alone — each prune stage keeps
 * round(h · (1 − sparsity)) units of every group (src/ir/passes/neuronGroups.ts)
 * — so lowering stays free of file I/O: which units were kept is in the prune
 * stage's checkpoint, how many is known here.
 */
import type { ModuleInfo } from '../../check/modules.js';
import { numberConst } from '../../check/types.js';
import type { StageDecl } from '../../language/ast.js';
import { keptUnits, neuronGroups, type NeuronGroup } from '../passes/neuronGroups.js';
import { Env } from './interp.js';
import { settingsLowerer } from './settings.js';
import { lowerModelForward } from './forward.js';
import { previousTrainingStage } from './lineage.js';
import type { Member, ModelNode } from './models.js';
import { describeLV, LoweringError, NotYetSupported } from './values.js';

/** A stage's target model as written in the recipe (before any pruning). */
export function declaredTarget(module: ModuleInfo, decl: StageDecl): ModelNode {
  const target = settingsLowerer().eval(decl.target, new Env(module));
  if (target.k !== 'model') throw new LoweringError(`stage ${decl.name.name}: the target must be a model, got ${describeLV(target)}`);
  return target.m;
}

/** Whether a prune stage removes whole units (`structured`, the default) rather than single weights. */
export function isStructured(module: ModuleInfo, stage: string): boolean {
  const t = module.facts.stageSettings.get(stage)?.get('structured');
  return !(t?.k === 'bool' && t.value === false);
}

/** A prune stage's `sparsity`: the share of units (or weights) it removes. */
export function sparsityOf(module: ModuleInfo, stage: string): number {
  const t = module.facts.stageSettings.get(stage)?.get('sparsity');
  const s = t ? numberConst(t) : null;
  if (s === null) throw new LoweringError(`stage ${stage}: sparsity must be a number`);
  return s;
}

/** The structured prune stages `model`'s weights went through before `decl` runs, oldest first. */
function pruneStagesBefore(module: ModuleInfo, decl: StageDecl, model: ModelNode): string[] {
  const owner = model.owner.split('@')[0]!;
  const chain: string[] = [];
  let current = model.checkpoint ?? previousTrainingStage(module, decl, owner);
  while (current) {
    const s = module.stages.get(current);
    if (!s) break;
    chain.push(current);
    current = previousTrainingStage(module, s, owner);
  }
  return chain.filter((s) => module.stages.get(s)!.stageKind.name === 'prune' && isStructured(module, s)).reverse();
}

/** The neuron groups of a model (from a forward on one token) with their sizes as declared. */
export function modelGroups(model: ModelNode): NeuronGroup[] {
  return neuronGroups(lowerModelForward(model, 1, 1, 'groups'));
}

/** Group sizes after pruning `sparsities` one after the other. */
export function prunedSizes(groups: readonly NeuronGroup[], sparsities: readonly number[]): Map<string, number> {
  return new Map(groups.map((g) => [g.name, sparsities.reduce((h, s) => keptUnits(h, s), g.size)]));
}

/** The model with each group's members narrowed to `sizes` units (parameters keep their names; their shapes shrink). */
export function withGroupSizes(model: ModelNode, groups: readonly NeuronGroup[], sizes: ReadonlyMap<string, number>): ModelNode {
  const axes = new Map<string, { axis: number; size: number }>();
  for (const g of groups) for (const m of g.members) axes.set(m.param, { axis: m.axis, size: sizes.get(g.name)! });
  const walk = (n: ModelNode): ModelNode => {
    const members = new Map<string, Member>();
    for (const [k, member] of n.members) {
      if (member.k === 'model') members.set(k, { k: 'model', m: walk(member.m) });
      else if (member.k === 'param') {
        const narrow = axes.get(`${member.p.owner}.${member.p.name}`);
        members.set(k, narrow ? { k: 'param', p: { ...member.p, shape: member.p.shape.map((d, i) => (i === narrow.axis ? narrow.size : d)) } } : member);
      } else members.set(k, member);
    }
    return { ...n, members, copies: n.copies.map(walk) };
  };
  return walk(model);
}

/**
 * The model as `decl` receives it: narrowed by every structured prune stage its
 * weights went through. The same object when there is none.
 */
export function modelAfterPruning(module: ModuleInfo, decl: StageDecl, model: ModelNode): ModelNode {
  const stages = pruneStagesBefore(module, decl, model);
  if (stages.length === 0) return model;
  if (model.adapted) throw new NotYetSupported(`stage ${decl.name.name}: ${model.owner} is a LoRA model of a pruned model; this version prunes models without adapters`);
  const groups = modelGroups(model);
  return withGroupSizes(model, groups, prunedSizes(groups, stages.map((s) => sparsityOf(module, s))));
}
