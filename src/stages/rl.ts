/** `rl` stages: checked, planned and run by a later version (rollouts, rewards and policy updates). */
import { notYetRunnable } from './notYet.js';

export const rlStage = notYetRunnable('rl', 'rollouts, rewards and policy updates');
