/**
 * `ptr plan`'s memory prediction against the peak RSS of real runs: for each
 * configuration (the quickstart, batch sweeps, dim 256 × 4 and × 12 layers) the
 * prediction is computed as `ptr plan` computes it, then `ptr run --steps 8` of
 * the same recipe runs in a child whose peak RSS (ru_maxrss of the child, read by a
 * small Python wrapper through getrusage(RUSAGE_CHILDREN)) is the measurement.
 * Reported: predicted, measured, and the error of the prediction.
 *
 *   npm run build && node dist/bench/memplan.js
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkFiles } from '../src/check/index.js';
import { predictStageMemory, stageDataBytes, formatBytes } from '../src/runtime/memoryPlan.js';
import { planStage } from '../src/stages/driver.js';
import { compilePlan } from '../targets/onnx/compile.js';

interface Config {
  readonly name: string;
  readonly dim: number;
  readonly layers: number;
  readonly heads: number;
  readonly batch: number;
}

const CONFIGS: readonly Config[] = [
  { name: 'quickstart', dim: 128, layers: 4, heads: 4, batch: 16 },
  { name: 'quickstart, batch 4', dim: 128, layers: 4, heads: 4, batch: 4 },
  { name: 'quickstart, batch 64', dim: 128, layers: 4, heads: 4, batch: 64 },
  { name: 'dim 256 × 4 layers', dim: 256, layers: 4, heads: 4, batch: 16 },
  { name: 'dim 256 × 12 layers', dim: 256, layers: 12, heads: 8, batch: 16 },
  { name: 'dim 256 × 12, batch 48', dim: 256, layers: 12, heads: 8, batch: 48 },
  // Not among the runs the constants were fitted to (src/runtime/memoryPlan.ts): a check of the fit.
  { name: 'dim 384 × 6, batch 8 (held out)', dim: 384, layers: 6, heads: 6, batch: 8 },
];

const PEAK = `
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
if r.returncode != 0:
    sys.stderr.write(r.stderr.decode()); sys.exit(r.returncode)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
`;

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'ptr-memplan-'));
  try {
    cpSync(resolve('examples/data'), join(dir, 'data'), { recursive: true });
    const base = readFileSync(resolve('examples/quickstart.pt-recipe'), 'utf8').replace(/\ndeploy [\s\S]*$/, '\n');
    console.log('ptr plan: predicted peak memory vs the peak RSS of `ptr run --steps 8` (one child each)\n');
    console.log(`${'configuration'.padEnd(32)} ${'predicted'.padStart(11)} ${'measured'.padStart(11)} ${'error'.padStart(7)}   parts (params, activations, data, runtime)`);
    const errors: number[] = [];
    for (const c of CONFIGS) {
      const file = join(dir, `${c.name.replace(/[^a-z0-9]+/gi, '-')}.pt-recipe`);
      writeFileSync(
        file,
        base
          .replace('dim: 128, layers: 4, heads: 4', `dim: ${c.dim}, layers: ${c.layers}, heads: ${c.heads}`)
          .replace('batch     = 16', `batch     = ${c.batch}`),
      );
      const module = checkFiles([file]).entryModules[0]!;
      const plan = planStage(module, 'pretrain', { steps: 8 });
      const compiled = compilePlan(plan, file);
      const p = predictStageMemory(plan, compiled.graphs['train_step']!, stageDataBytes(plan));
      const measured = Number(execFileSync('python3', ['-c', PEAK, process.execPath, resolve('bin/ptr.js'), 'run', file, '--steps', '8', '--out', join(dir, 'runs', c.name.replace(/\W+/g, '-'))], { encoding: 'utf8' }).trim());
      const error = p.total / measured - 1;
      errors.push(error);
      console.log(
        `${c.name.padEnd(32)} ${formatBytes(p.total).padStart(11)} ${formatBytes(measured).padStart(11)} ${`${(error * 100).toFixed(1)}%`.padStart(7)}   ` +
          `${formatBytes(p.params + p.grads + p.optimizer + p.stepOutputs)}, ${formatBytes(p.activations)}, ${formatBytes(p.data)}, ${formatBytes(p.runtime)}`,
      );
    }
    const worst = Math.max(...errors.map(Math.abs));
    console.log(`\nlargest error ${(worst * 100).toFixed(1)}% (target: within ±20%)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
