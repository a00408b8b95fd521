/** `eval` stages: checked, planned and run by a later version (benchmarks and judges). */
import { notYetRunnable } from './notYet.js';

export const evalStage = notYetRunnable('eval', 'benchmarks and judges');
