/**
 * Watching and steering the runtime's onnxruntime sessions from a benchmark
 * without changing the runtime: while `body` runs, `InferenceSession.create`
 * gets extra options laid over the runtime's, every `session.run` is timed,
 * and `release` can do something first (end the profile). Everything is put
 * back afterwards.
 */
import { ort } from '../src/runtime/ort.js';

/** When one session.run call started and returned (performance.now(), ms). */
export interface Span {
  readonly start: number;
  readonly end: number;
}

export interface OrtHooks {
  /** Options laid over those the runtime passes to InferenceSession.create. */
  readonly createOptions?: Record<string, unknown>;
  /** Called on a session before it is released (e.g. `endProfiling`). */
  readonly beforeRelease?: (session: { endProfiling: () => void }) => void;
}

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/** Runs `body` under the hooks; returns its result and the span of every session.run call, in call order. */
export async function withOrtHooks<T>(hooks: OrtHooks, body: () => Promise<T>): Promise<{ result: T; spans: Span[] }> {
  const factory = ort.InferenceSession as unknown as { create: Fn; prototype: { run: Fn; release: Fn } };
  const { create } = factory;
  const { run, release } = factory.prototype;
  if (typeof run !== 'function' || typeof create !== 'function') throw new Error('onnxruntime-node: InferenceSession.create or .prototype.run not found; cannot time steps');
  const spans: Span[] = [];
  if (hooks.createOptions) {
    const extra = hooks.createOptions;
    factory.create = function (this: unknown, ...args: unknown[]): unknown {
      if (args.length !== 2) throw new Error('bench: expected InferenceSession.create(model, options)');
      return create.call(this, args[0], { ...(args[1] as object), ...extra });
    };
  }
  factory.prototype.run = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
    const start = performance.now();
    try {
      return await run.apply(this, args);
    } finally {
      spans.push({ start, end: performance.now() });
    }
  };
  if (hooks.beforeRelease) {
    const before = hooks.beforeRelease;
    factory.prototype.release = function (this: unknown): unknown {
      before(this as { endProfiling: () => void });
      return release.call(this);
    };
  }
  try {
    return { result: await body(), spans };
  } finally {
    factory.create = create;
    factory.prototype.run = run;
    factory.prototype.release = release;
  }
}

/** Step times (s) from consecutive session.run starts: steps `from` … `from + count − 1` (one run per step). */
export function stepTimes(spans: readonly Span[], from: number, count: number): number[] {
  return spans.slice(from, from + count).map((s, i) => (spans[from + i + 1]!.start - s.start) / 1000);
}
