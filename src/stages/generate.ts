/** `generate` stages: checked, planned and run by a later version (batched sampling into a dataset). */
import { notYetRunnable } from './notYet.js';

export const generateStage = notYetRunnable('generate', 'batched sampling into a dataset');
