/**
 * Where a model's weights come from, stage by stage: the stages that update a
 * model (train, rl, prune, quantize) form its lineage through `after`.
 */
import type { ModuleInfo } from '../../check/modules.js';
import { STAGE_KINDS } from '../../check/stageRules.js';
import type { StageDecl } from '../../language/ast.js';

/**
 * The nearest stage before `decl` (through `after`, breadth first) that trained
 * `model` — of a kind that updates its model, so not generate or eval: where the
 * model's weights come from. The checker has already ruled out two equally near
 * candidates.
 */
export function previousTrainingStage(module: ModuleInfo, decl: StageDecl, model: string): string | null {
  const seen = new Set<string>();
  let frontier = decl.after.map((a) => a.name);
  while (frontier.length) {
    const next: string[] = [];
    for (const name of frontier) {
      if (seen.has(name)) continue;
      seen.add(name);
      const s = module.stages.get(name);
      if (!s) continue;
      if (s.target.kind === 'NameExpr' && s.target.name === model && STAGE_KINDS[s.stageKind.name]?.updates) return name;
      next.push(...s.after.map((a) => a.name));
    }
    frontier = next;
  }
  return null;
}

