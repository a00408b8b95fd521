/** `ptr run FILE`: check the recipe, then run its pipeline (stages in `after` order, then deploys). */
import { basename, join } from 'node:path';
import { requireCuda, type Device } from '../runtime/ort.js';
import { runPipeline } from '../stages/driver.js';
import { UsageError, type Io } from './io.js';
import { checkedModule } from './pipeline.js';

export interface RunCommandOptions {
  readonly stage?: string;
  readonly out?: string;
  readonly device?: Device;
  readonly resume?: boolean;
  readonly steps?: number;
  readonly threads?: number;
  readonly stepsPerRun?: number;
  /** Archive what the run folder holds and start over. */
  readonly fresh?: boolean;
  /** With --resume: continue a run whose recipe, data, seed or steps changed. */
  readonly allowChanged?: boolean;
  /** Folders outside the project that deploys may write to. */
  readonly allowWrite?: readonly string[];
  /** Run stages predicted to need more memory than is available. */
  readonly force?: boolean;
}

export function defaultRunDir(file: string): string {
  return join('runs', basename(file).replace(/\.pt-recipe$/, ''));
}

/** Exit code 1 when anything the recipe asks for (a stage, a deploy) did not run. */
export async function runRun(io: Io, file: string, options: RunCommandOptions, version: string): Promise<number> {
  if (options.fresh && options.resume) throw new UsageError('--fresh starts over and --resume continues: give one of them');
  if (options.allowChanged && !options.resume) throw new UsageError('--allow-changed goes with --resume (it lets a changed recipe continue a run)');
  if (options.device === 'cuda') requireCuda();
  const module = checkedModule(io, file);
  if (!module) return 1;
  const runDir = options.out ?? defaultRunDir(file);
  const { stage, steps, threads, stepsPerRun } = options;
  const result = await runPipeline(
    module,
    {
      recipe: file,
      runDir,
      device: options.device ?? 'cpu',
      resume: options.resume ?? false,
      fresh: options.fresh ?? false,
      allowChanged: options.allowChanged ?? false,
      handleSignals: true,
      allowWrite: options.allowWrite ?? [],
      force: options.force ?? false,
      version,
      ...(stage ? { stage } : {}),
      ...(steps ? { steps } : {}),
      ...(threads ? { threads } : {}),
      ...(stepsPerRun ? { stepsPerRun } : {}),
    },
    (line) => io.err(`${line}\n`),
  );
  for (const r of result.ran) io.out(`${r.summary}\n`);
  for (const d of result.deployed) io.out(`${d}\n`);
  for (const n of result.notRun) io.out(`not run: ${n.what}: ${n.why}\n`);
  io.out(`run folder: ${runDir}/ (metrics.jsonl, checkpoints/)\n`);
  if (result.notRun.length) io.err(`error: ${result.notRun.length} of what ${file} asks for did not run (listed above)\n`);
  return result.notRun.length ? 1 : 0;
}
