/**
 * The skeleton of a stage kind this version checks but does not run yet:
 * planning it says so, as a user-facing error (never an internal one).
 */
import { NotYetSupported } from '../ir/lower/values.js';
import type { StageKindModule } from './kind.js';

export function notYetRunnable(kind: string, what: string): StageKindModule {
  const refuse = (): never => {
    throw new NotYetSupported(`this version checks ${kind} stages but does not run them yet (${what})`);
  };
  return { kind, plan: refuse, run: async () => refuse() };
}
