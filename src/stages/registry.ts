/**
 * Stage kind → the module that plans and runs it, keyed like the checker's
 * stage-kind table (check/stageRules.ts STAGE_KINDS). Adding a stage kind is a
 * row there, a module here and a row in this table.
 */
import type { StageKindModule } from './kind.js';
import { evalStage } from './eval.js';
import { generateStage } from './generate.js';
import { pruneStage } from './prune.js';
import { quantizeStage } from './quantize.js';
import { rlStage } from './rl.js';
import { trainStage } from './train.js';

export const STAGE_MODULES: Readonly<Record<string, StageKindModule>> = {
  train: trainStage,
  rl: rlStage,
  generate: generateStage,
  prune: pruneStage,
  quantize: quantizeStage,
  eval: evalStage,
};
