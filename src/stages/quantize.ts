/** `quantize` stages: checked, planned and run by a later version (post-training and quantization-aware quantization). */
import { notYetRunnable } from './notYet.js';

export const quantizeStage = notYetRunnable('quantize', 'post-training and quantization-aware quantization');
