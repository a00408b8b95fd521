/**
 * Gradient checking: analytic gradients (our autodiff, run by the float64
 * reference evaluator) against central finite differences of the loss.
 * Used by `ptr gradcheck` and by the gradcheck test of every op.
 */
import { gradients } from './autodiff.js';
import { GraphBuilder } from './builder.js';
import type { Graph, Value } from './graph.js';
import { evaluateGraph } from './evaluate.js';
import type { Tensor } from './tensor.js';

/** Builds a scalar loss and names the inputs to differentiate. Called more than once. */
export type LossBuilder = (b: GraphBuilder) => { readonly loss: Value; readonly wrt: readonly Value[] };

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6; the evaluator runs in float64). */
  readonly eps?: number;
  /** At most this many elements are perturbed per input, spread evenly over it (default: all). */
  readonly samplesPerInput?: number;
  /** Shifts which elements are sampled. */
  readonly seed?: number;
  /** Gradients below this are compared absolutely (default 1e-6); see gradientError. */
  readonly floor?: number;
}

export interface GradcheckResult {
  readonly name: string;
  readonly checked: number;
  readonly maxRelError: number;
  /** The element with the largest error, and both gradients there. */
  readonly worst: { readonly index: number; readonly analytic: number; readonly numeric: number };
}

/** The graph with outputs `loss` and `grad:NAME` for every differentiated input. */
export function buildGradientGraph(name: string, build: LossBuilder): { graph: Graph; wrt: readonly Value[] } {
  const b = new GraphBuilder(name);
  const { loss, wrt } = build(b);
  const grads = gradients(b, loss, wrt);
  b.output('loss', loss);
  for (const p of wrt) {
    const g = grads.get(p);
    if (g) b.output(`grad:${p.inputName}`, g);
    else b.output(`grad:${p.inputName}`, b.full(p.shape, 0));
  }
  return { graph: b.build(), wrt };
}

/**
 * The error measure: relative where the gradients are at least `floor`, the
 * absolute difference where both are smaller (a central difference cannot
 * resolve gradients much below the loss's rounding noise divided by eps).
 */
export function gradientError(analytic: number, numeric: number, floor = 1e-6): number {
  const scale = Math.max(Math.abs(analytic), Math.abs(numeric));
  const diff = Math.abs(analytic - numeric);
  return scale < floor ? diff : diff / scale;
}

export function gradcheck(build: LossBuilder, feeds: ReadonlyMap<string, Tensor>, options: GradcheckOptions = {}): GradcheckResult[] {
  const eps = options.eps ?? 1e-6;
  const { graph, wrt } = buildGradientGraph('gradcheck', build);
  const analytic = evaluateGraph(graph, feeds);

  const fb = new GraphBuilder('gradcheck_forward');
  fb.output('loss', build(fb).loss);
  const forward = fb.build();
  const lossAt = (name: string, index: number, delta: number): number => {
    const base = feeds.get(name)!;
    const data = base.data.slice();
    data[index]! += delta;
    const perturbed = new Map(feeds);
    perturbed.set(name, { ...base, data });
    return evaluateGraph(forward, perturbed).get('loss')!.data[0]!;
  };

  return wrt.map((p) => {
    const name = p.inputName!;
    const grad = analytic.get(`grad:${name}`)!.data;
    const n = grad.length;
    const limit = options.samplesPerInput ?? n;
    const shift = options.seed ?? 0;
    const indices = limit >= n ? [...Array(n).keys()] : Array.from({ length: limit }, (_, k) => (Math.floor((k * n) / limit) + shift * 7919) % n);
    let worst = { index: -1, analytic: 0, numeric: 0 };
    let maxRelError = 0;
    for (const i of indices) {
      const numeric = (lossAt(name, i, eps) - lossAt(name, i, -eps)) / (2 * eps);
      const err = gradientError(grad[i]!, numeric, options.floor);
      if (err >= maxRelError) {
        maxRelError = err;
        worst = { index: i, analytic: grad[i]!, numeric };
      }
    }
    return { name, checked: indices.length, maxRelError, worst };
  });
}
