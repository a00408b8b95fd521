/**
 * The benchmarks, each reported as ratios against a baseline measured in the
 * same run (see README.md):
 *
 *   frontend  parse and check throughput on generated 5k–20k-line recipes   (frontend.ts)
 *   train     training throughput vs ORT MatMul FLOP/s, per-step overhead    (training.ts)
 *   compile   recipe text → ONNX files for a 12-layer model                  (compile.ts)
 *   memory    peak RSS of training vs the analytic minimum                   (memory.ts)
 *   profile   ORT kernel time by op type and phase of the dim-256 train_step,
 *             at 1 and 2 threads                                             (profile.ts)
 *   pytorch   ptr vs PyTorch eager, and 1 vs 2 threads, interleaved rounds  (pytorch.ts)
 *   sessions  the training session's ORT options (threads, spinning, parallel
 *             mode), idle and with a busy process beside it                  (sessions.ts)
 *   generation  tokens/s with the KV cache vs full recompute; decode step vs
 *             the ORT MatMul roofline                                        (generation.ts)
 *
 *   npm run bench                              # all of them, in this order
 *   npm run bench -- --only train,memory       # some of them (throughput and overhead are aliases of train)
 */
import { cpus, loadavg } from 'node:os';
import { ort } from '../src/runtime/ort.js';
import { runCompile } from './compile.js';
import { runFrontEnd } from './frontend.js';
import { runGeneration } from './generation.js';
import { runMemory } from './memory.js';
import { runProfile } from './profile.js';
import { runPytorch } from './pytorch.js';
import { runSessions } from './sessions.js';
import { runTraining } from './training.js';
import { fmt } from './util.js';

const PARTS: Record<string, () => void | Promise<void>> = {
  frontend: runFrontEnd,
  train: runTraining,
  compile: runCompile,
  memory: runMemory,
  profile: runProfile,
  pytorch: runPytorch,
  sessions: runSessions,
  generation: runGeneration,
};
const DEFAULT = ['frontend', 'train', 'compile', 'memory', 'profile', 'pytorch', 'generation'];
const ALIASES: Record<string, string> = { throughput: 'train', overhead: 'train', 'front-end': 'frontend', torch: 'pytorch', threads: 'pytorch' };

function usage(): string {
  return `usage: node dist/bench/run.js [--only PART[,PART...]]\nparts: ${Object.keys(PARTS).join(', ')} (default: ${DEFAULT.join(', ')}); see bench/README.md\n`;
}

function parseArgs(argv: readonly string[]): string[] {
  let parts = DEFAULT;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(usage());
      process.exit(0);
    }
    const value = a === '--only' ? argv[++i] : a.startsWith('--only=') ? a.slice('--only='.length) : undefined;
    if (value === undefined) {
      process.stderr.write(`unknown argument ${a}\n${usage()}`);
      process.exit(2);
    }
    parts = value.split(',').map((p) => ALIASES[p.trim()] ?? p.trim());
    const unknown = parts.filter((p) => !PARTS[p]);
    if (unknown.length) {
      process.stderr.write(`unknown part ${unknown.join(', ')}\n${usage()}`);
      process.exit(2);
    }
  }
  return [...new Set(parts)];
}

async function main(): Promise<void> {
  const parts = parseArgs(process.argv.slice(2));
  const cpu = cpus();
  const versions = (ort.env as { versions?: Record<string, string> }).versions ?? {};
  console.log(
    `pt-recipe benchmarks — node ${process.version}, onnxruntime-node ${versions['node'] ?? '?'}, ${cpu.length} CPUs (${cpu[0]?.model.trim() ?? '?'}); ` +
      `load average ${loadavg().map((l) => fmt(l, 2)).join(' ')}`,
  );
  for (const p of parts) {
    const t0 = performance.now();
    console.log(`\n=== ${p} ===\n`);
    await PARTS[p]!();
    console.log(`\n(${p}: ${fmt((performance.now() - t0) / 1000, 1)} s; load average now ${loadavg().map((l) => fmt(l, 2)).join(' ')})`);
  }
}

try {
  await main();
} catch (e) {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
}
