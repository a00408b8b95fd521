/** `prune` stages: checked, planned and run by a later version (structured pruning). */
import { notYetRunnable } from './notYet.js';

export const pruneStage = notYetRunnable('prune', 'structured pruning');
