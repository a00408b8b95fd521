/** Deploy format → target module (one row per format of check/stageRules.ts DEPLOY_FORMATS). */
import type { DeployTarget } from './deploy.js';
import { notYetDeployable } from './deploy.js';
import { hfTarget } from './hf/deploy.js';
import { onnxTarget } from './onnx/deploy.js';

export const DEPLOY_TARGETS: Readonly<Record<string, DeployTarget>> = {
  onnx: onnxTarget,
  tensorrt: notYetDeployable('tensorrt'),
  triton: notYetDeployable('triton'),
  hf: hfTarget,
};
