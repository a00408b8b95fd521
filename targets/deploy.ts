/**
 * Deploy targets: `deploy m @ s to FORMAT` → the module that writes FORMAT's
 * artifacts, keyed like the checker's table of deploy formats
 * (check/stageRules.ts DEPLOY_FORMATS). A target turns graphs and weights into
 * files; the caller writes them (atomically) and reads the checkpoint.
 */
import type { ModuleInfo } from '../src/check/modules.js';
import type { Graph } from '../src/ir/graph.js';

export interface DeployRequest {
  readonly format: string;
  readonly model: string;
  readonly stage: string;
  readonly precision: string;
  /** The stage's graphs (`inference`, …), unoptimised. */
  readonly graphs: Readonly<Record<string, Graph>>;
  /** The trained weights by graph input name. */
  readonly weights: ReadonlyMap<string, Float32Array>;
  /** The recipe's module, for targets that describe the model itself (hf: its architecture and config.json). */
  readonly module?: ModuleInfo;
}

export interface DeployOutput {
  readonly files: readonly { readonly name: string; readonly bytes: Uint8Array }[];
  /** Why nothing was written, when the target cannot do what the recipe asks yet. */
  readonly notDone: string | null;
  readonly description?: string;
}

export interface DeployTarget {
  readonly format: string;
  deploy(request: DeployRequest): DeployOutput;
}

/** A target this version checks but does not write yet. */
export function notYetDeployable(format: string): DeployTarget {
  return { format, deploy: () => ({ files: [], notDone: `this version does not write ${format} artifacts yet` }) };
}
