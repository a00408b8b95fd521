/**
 * Lexical scopes for expression checking. A scope maps local names to types
 * and falls back to its module's declarations. Stage scopes also record the
 * checkpoints and generated datasets their expressions depend on.
 */
import type { Span } from '../language/ast.js';
import type { ModuleInfo } from './modules.js';
import type { CheckpointRef, Ty } from './types.js';

/** A dependency of a stage on another stage, found while checking its expressions. */
export interface StageDependency {
  readonly stage: string;
  readonly span: Span;
  readonly why: string;
}

export class Scope {
  private readonly vars = new Map<string, Ty>();

  constructor(
    readonly module: ModuleInfo,
    readonly parent: Scope | null = null,
    /** Collects stage dependencies (set on a stage's scope; inherited by children). */
    readonly dependencies: StageDependency[] | null = parent?.dependencies ?? null,
  ) {}

  define(name: string, ty: Ty): void {
    this.vars.set(name, ty);
  }

  /** A local binding, searching enclosing scopes; undefined when the name is not local. */
  local(name: string): Ty | undefined {
    for (let s: Scope | null = this; s; s = s.parent) {
      const t = s.vars.get(name);
      if (t !== undefined) return t;
    }
    return undefined;
  }

  /** All local names visible here, for "did you mean" hints. */
  localNames(): string[] {
    const out: string[] = [];
    for (let s: Scope | null = this; s; s = s.parent) out.push(...s.vars.keys());
    return out;
  }

  child(): Scope {
    return new Scope(this.module, this);
  }

  recordCheckpoint(ref: CheckpointRef, span: Span): void {
    this.dependencies?.push({ stage: ref.stage, span, why: `uses the checkpoint ${ref.model} @ ${ref.stage}` });
  }

  recordStage(stage: string, span: Span, why: string): void {
    this.dependencies?.push({ stage, span, why });
  }
}
