/**
 * Compile-time values of a stage: an interpreter for setting expressions (a
 * target model, a dataset, `adamw(...)`) that emits no parameters, and integer
 * settings as the checker typed them, with the stage-kind table's defaults.
 */
import type { ModuleInfo } from '../../check/modules.js';
import { STAGE_KINDS } from '../../check/stageRules.js';
import { intConst } from '../../check/types.js';
import type { StageDecl } from '../../language/ast.js';
import { GraphBuilder } from '../builder.js';
import { Lowerer, type ModuleValues } from './interp.js';
import { LoweringError } from './values.js';

/** A lowerer for setting expressions; `shared` keeps a module's models the same objects as in the graphs lowered beside it. */
export function settingsLowerer(shared: ModuleValues = new Map()): Lowerer {
  return new Lowerer(
    new GraphBuilder('probe'),
    () => {
      throw new LoweringError('settings cannot read parameters');
    },
    shared,
  );
}

/** An integer setting of a stage as the checker typed it, else the stage-kind table's default, else null. */
export function stageIntSetting(module: ModuleInfo, decl: StageDecl, name: string): number | null {
  const typed = module.facts.stageSettings.get(decl.name.name)?.get(name);
  const value = typed ? intConst(typed) : null;
  return value ?? STAGE_KINDS[decl.stageKind.name]?.settings[name]?.default ?? null;
}
