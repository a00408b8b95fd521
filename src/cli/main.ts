/**
 * The `ptr` command line: commander wiring, exit codes and the last line of
 * defence against crashes. Each command lives in its own module and returns
 * its exit code; this file only parses arguments and maps failures:
 *
 *   0  ok
 *   1  the input or the environment has problems: diagnostics were printed, or a
 *      UserError (bad data, checkpoint, device, prompt) or a file system error
 *   2  the command line is wrong (unknown option, command or stage, missing argument)
 *   70 internal error: a bug in pt-recipe (EX_SOFTWARE from sysexits.h)
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { runAst } from './ast.js';
import { runCheck } from './check.js';
import { runFmt } from './fmt.js';
import { paint, processIo, UsageError, type Io } from './io.js';
import { runTypes } from './types.js';
import { runCompile, runIr } from './compile.js';
import { runGradcheck } from './gradcheck.js';
import { runRun } from './run.js';
import { runPlan } from './plan.js';
import { runSample } from './sample.js';
import { runGenerate } from './generate.js';
import { fileSystemError, UserError } from '../runtime/errors.js';
import { allowReadsUnder } from '../check/modules.js';
import { NotYetSupported } from '../ir/lower/values.js';
import { DiagnosticBag } from '../language/diagnostics.js';
import { parseRecipe } from '../language/parser.js';
import { readSource } from './io.js';

/** Exit codes of `ptr`. */
export const EXIT = { ok: 0, diagnostics: 1, usage: 2, internal: 70 } as const;

/** The package version, read from the package.json above this file (works from src/ and from dist/src/). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pt-recipe' && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.');
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected an integer >= 0.');
  return n;
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0.');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}

const EXIT_HELP = `
Exit codes: 0 ok, 1 problems found in the input, 2 wrong command line, 70 internal error.`;

/**
 * Builds the commander program. Commands report their exit code through
 * `setCode`; commander's own failures surface as CommanderError (exitOverride).
 */
export function buildProgram(io: Io, setCode: (code: number) => void): Command {
  const program = new Command();
  // Settings made before `.command()` are inherited by every subcommand.
  program
    .name('ptr')
    .description('pt-recipe: check, format and inspect LLM post-training recipes (*.pt-recipe).')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(paint(io, 'red', s)),
      getOutHasColors: () => io.color,
      getErrHasColors: () => io.color,
    })
    .showHelpAfterError("(run 'ptr --help' for usage)")
    .addHelpText('after', `\nExamples:\n  ptr check examples/arith/pipeline.pt-recipe\n  ptr types examples/arith/pipeline.pt-recipe\n  ptr fmt --check examples\n${EXIT_HELP}`);

  const maxErrors = (): Option =>
    new Option('--max-errors <n>', 'stop after this many diagnostics (default 200)').argParser(positiveInt);

  program
    .command('check')
    .description('parse, resolve and type-check recipes; print diagnostics with source excerpts')
    .argument('<files...>', 'recipe files, or folders to search for *.pt-recipe files')
    .option('--json', 'print one JSON document { ok, errors, warnings, truncated, files, diagnostics }')
    .addOption(maxErrors())
    .showHelpAfterError("(run 'ptr check --help' for usage)")
    .addHelpText('after', `\nExamples:\n  ptr check examples/arith/pipeline.pt-recipe\n  ptr check --json --max-errors 20 examples\n${EXIT_HELP}`)
    .action((files: string[], opts: { json?: boolean; maxErrors?: number }) => setCode(runCheck(io, files, opts)));

  program
    .command('fmt')
    .description('rewrite recipes in the canonical layout, in place (files with syntax errors are left untouched)')
    .argument('<files...>', 'recipe files, or folders to search for *.pt-recipe files')
    .option('--check', 'change nothing; list the files that would change and exit 1 if there are any')
    .showHelpAfterError("(run 'ptr fmt --help' for usage)")
    .addHelpText('after', `\nExamples:\n  ptr fmt examples/arith/pipeline.pt-recipe\n  ptr fmt --check .\n${EXIT_HELP}`)
    .action((files: string[], opts: { check?: boolean }) => setCode(runFmt(io, files, opts)));

  program
    .command('ast')
    .description('print the syntax tree of a recipe as JSON')
    .argument('<file>', 'a recipe file')
    .option('--no-loc', 'leave out source locations (and comments)')
    .showHelpAfterError("(run 'ptr ast --help' for usage)")
    .addHelpText('after', `\nExamples:\n  ptr ast --no-loc examples/arith/pipeline.pt-recipe\n${EXIT_HELP}`)
    .action((file: string, opts: { loc?: boolean }) => setCode(runAst(io, file, opts)));

  program
    .command('types')
    .description('print what the checker inferred for each declaration: line, kind, name and type')
    .argument('<files...>', 'recipe files, or folders to search for *.pt-recipe files')
    .option('--json', 'print { declarations, diagnostics } as JSON')
    .addOption(maxErrors())
    .showHelpAfterError("(run 'ptr types --help' for usage)")
    .addHelpText('after', `\nExamples:\n  ptr types examples/arith/pipeline.pt-recipe\n${EXIT_HELP}`)
    .action((files: string[], opts: { json?: boolean; maxErrors?: number }) => setCode(runTypes(io, files, opts)));

  const stageOption = (): Option => new Option('--stage <name>', 'the train stage (default: the first stage)');
  program.hook('preAction', (_program, action) => checkStageOption(action.args[0], action.opts()['stage']));
  // Every command that checks a recipe reads its files through the sandbox; --allow-read widens it.
  program
    .addOption(
      new Option('--allow-read <path>', "let recipes read files under PATH too (repeatable; by default only under the recipe's folder and its project's)")
        .argParser((value: string, previous: string[]) => [...previous, value])
        .default([] as string[], 'none'),
    )
    .hook('preAction', () => allowReadsUnder(program.opts<{ allowRead: string[] }>().allowRead));
  const version = packageVersion();

  program
    .command('compile')
    .description('lower a train stage to ONNX: train_step.onnx, eval.onnx, inference.onnx and manifest.json')
    .argument('<file>', 'a recipe file')
    .requiredOption('-o, --out <dir>', 'folder to write the models and manifest into')
    .addOption(stageOption())
    .addOption(new Option('--steps <n>', "override the stage's steps").argParser(positiveInt))
    .addOption(new Option('--device <device>', 'cuda: rewrite ops without a CUDA kernel and check every node has one').choices(['cpu', 'cuda']).default('cpu'))
    .addHelpText('after', `\nExamples:\n  ptr compile examples/quickstart.pt-recipe -o out/quickstart-graphs\n  ptr compile examples/quickstart.pt-recipe -o out/quickstart-cuda --device cuda\n${EXIT_HELP}`)
    .action((file: string, opts: { out: string; stage?: string; steps?: number; device?: 'cpu' | 'cuda' }) => setCode(runCompile(io, file, opts, version)));

  program
    .command('ir')
    .description("print one graph of a stage's plan (typed SSA IR) in its textual form")
    .argument('<file>', 'a recipe file')
    .addOption(stageOption())
    .addOption(new Option('--graph <which>', 'which graph').choices(['train_step', 'eval', 'inference']).default('train_step'))
    .option('--optimized', 'after CSE, constant folding and dead-code elimination')
    .option('--provenance', "show each node's recipe line and phase (forward, backward, optimizer)")
    .addHelpText('after', `\nExamples:\n  ptr ir --graph inference examples/quickstart.pt-recipe\n${EXIT_HELP}`)
    .action((file: string, opts: { stage?: string; graph?: 'train_step' | 'eval' | 'inference'; optimized?: boolean; provenance?: boolean }) => setCode(runIr(io, file, opts)));

  program
    .command('gradcheck')
    .description("compare a stage's analytic gradients with central finite differences (float64 reference evaluator)")
    .argument('<file>', 'a recipe file')
    .addOption(stageOption())
    .addOption(new Option('--batch <n>', 'batch size of the check (default 2)').argParser(positiveInt))
    .addOption(new Option('--seq <n>', 'sequence length of the check (default 8)').argParser(positiveInt))
    .addOption(new Option('--samples <n>', 'elements perturbed per parameter (default 4)').argParser(positiveInt))
    .addOption(new Option('--tolerance <x>', 'largest accepted relative error (default 1e-4)').argParser(positiveNumber))
    .addOption(new Option('--seed <n>', 'seed of the initial weights and the batch').argParser(nonNegativeInt))
    .addHelpText('after', `\nExamples:\n  ptr gradcheck examples/quickstart.pt-recipe --samples 8\n${EXIT_HELP}`)
    .action((file: string, opts: { stage?: string; batch?: number; seq?: number; samples?: number; tolerance?: number; seed?: number }) =>
      setCode(runGradcheck(io, file, opts)),
    );

  program
    .command('run')
    .description('check, compile and train every train stage of a recipe, then write its onnx deployments')
    .argument('<file>', 'a recipe file')
    .addOption(stageOption())
    .option('--out <dir>', 'run folder for checkpoints and metrics (default runs/<recipe name>)')
    .addOption(new Option('--device <device>', 'where to run').choices(['cpu', 'cuda']).default('cpu'))
    .option('--resume', 'continue each stage from its latest checkpoint (refused if the recipe, data, seed or steps changed)')
    .option('--fresh', 'archive what the run folder holds (to <folder>.archived-<time>) and start over')
    .option('--allow-changed', 'with --resume: continue even though the recipe, data, seed or steps changed')
    .option('--force', 'run a stage even when ptr plan predicts it needs more memory than is available')
    .addOption(
      new Option('--allow-write <path>', "let the recipe's deploys write under PATH, outside its project folder (repeatable)")
        .argParser((value: string, previous: string[]) => [...previous, value])
        .default([] as string[], 'none'),
    )
    .addOption(new Option('--steps <n>', "override the stages' steps").argParser(positiveInt))
    .addOption(new Option('--threads <n>', 'onnxruntime intra-op threads (default: all cores)').argParser(positiveInt))
    .addOption(new Option('--steps-per-run <k>', 'train k steps per onnxruntime call (an ONNX Loop; fewer host-device copies on cuda)').argParser(positiveInt))
    .addHelpText('after', `\nExamples:\n  ptr run examples/quickstart.pt-recipe\n  ptr run examples/quickstart.pt-recipe --resume\n${EXIT_HELP}`)
    .action(async (file: string, opts: { stage?: string; out?: string; device?: 'cpu' | 'cuda'; resume?: boolean; fresh?: boolean; allowChanged?: boolean; allowWrite?: string[]; force?: boolean; steps?: number; threads?: number; stepsPerRun?: number }) =>
      setCode(await runRun(io, file, opts, version)),
    );

  program
    .command('generate')
    .description("generate replies from a train stage's latest checkpoint: one prompt, or a JSONL file of them")
    .argument('<file>', 'a recipe file')
    .addOption(stageOption())
    .option('--run <dir>', 'run folder (default runs/<recipe name>)')
    .option('--prompt <text>', 'one prompt, built as in training: after bos, or as the user message of a chat (default: a newline for text data, empty otherwise); printed as it is generated')
    .option('--prompts <file>', 'a JSONL file of prompts, {"prompt": ...} per line (chat data: or {"messages": [...]}); one JSONL result per prompt')
    .option('--system <text>', 'a system message before --prompt (chat data)')
    .option('--out <file>', 'write the JSONL results here (default: stdout)')
    .addOption(
      new Option('--stop <text>', 'also stop when the generated text contains this (repeatable); generation always stops at eos')
        .argParser((value: string, previous: string[]) => [...previous, value])
        .default([] as string[], 'none'),
    )
    .addOption(new Option('--max-tokens <n>', 'most tokens per reply (default 300)').argParser(positiveInt))
    .addOption(new Option('--temperature <x>', 'sampling temperature; 0 is greedy (default 0.8)').argParser(nonNegativeNumber))
    .addOption(new Option('--top-k <k>', 'sample among the k most likely tokens (default: all)').argParser(positiveInt))
    .addOption(new Option('--top-p <p>', 'sample among the most likely tokens whose probabilities reach p, in (0, 1] (default 1)').argParser(positiveNumber))
    .addOption(new Option('--repetition-penalty <x>', 'divide the logits of tokens already in the sequence by x (default 1: off)').argParser(positiveNumber))
    .addOption(new Option('--seed <n>', 'sampling seed (default 0); each prompt draws from its own stream').argParser(nonNegativeInt))
    .addOption(new Option('--batch <n>', 'prompts generated together (default 16)').argParser(positiveInt))
    .option('--no-cache', 'recompute the whole sequence for every token instead of using the KV cache (slower; for comparison)')
    .addOption(new Option('--device <device>', 'where to run').choices(['cpu', 'cuda']).default('cpu'))
    .addOption(new Option('--threads <n>', 'onnxruntime intra-op threads (default: all cores)').argParser(positiveInt))
    .addHelpText(
      'after',
      `\nExamples:\n  ptr generate examples/quickstart.pt-recipe --prompt "Once upon"\n  ptr generate examples/arith/pipeline.pt-recipe --stage sft --prompts questions.jsonl --temperature 0 --out answers.jsonl\n\n'ptr sample' is this command with one prompt and the older option name --tokens.\n${EXIT_HELP}`,
    )
    .action(
      async (
        file: string,
        opts: { stage?: string; run?: string; prompt?: string; prompts?: string; system?: string; out?: string; stop?: string[]; maxTokens?: number; temperature?: number; topK?: number; topP?: number; repetitionPenalty?: number; seed?: number; batch?: number; cache?: boolean; device?: 'cpu' | 'cuda'; threads?: number },
      ) => setCode(await runGenerate(io, file, opts)),
    );

  program
    .command('plan')
    .description('predict each stage\'s peak memory (weights, gradients, optimizer state, activations, data) before running it')
    .argument('<file>', 'a recipe file')
    .addOption(stageOption())
    .addOption(new Option('--steps <n>', "override the stages' steps").argParser(positiveInt))
    .addHelpText('after', `\nExamples:\n  ptr plan examples/quickstart.pt-recipe\n${EXIT_HELP}`)
    .action((file: string, opts: { stage?: string; steps?: number }) => setCode(runPlan(io, file, opts)));

  program
    .command('sample')
    .description("generate text from a train stage's latest checkpoint (ptr generate with one prompt)")
    .argument('<file>', 'a recipe file')
    .addOption(stageOption())
    .option('--run <dir>', 'run folder (default runs/<recipe name>)')
    .option('--prompt <text>', 'text to continue, built as in training: after bos, or as the user message of a chat (default: a newline for text data, empty otherwise)')
    .option('--system <text>', 'a system message before the prompt (chat data)')
    .addOption(
      new Option('--stop <text>', 'also stop when the generated text contains this (repeatable); generation always stops at eos')
        .argParser((value: string, previous: string[]) => [...previous, value])
        .default([] as string[], 'none'),
    )
    .addOption(new Option('--tokens <n>', 'tokens to generate (default 300)').argParser(positiveInt))
    .addOption(new Option('--temperature <x>', 'sampling temperature (default 0.8)').argParser(positiveNumber))
    .addOption(new Option('--seed <n>', 'sampling seed (default 0)').argParser(nonNegativeInt))
    .addHelpText('after', `\nExamples:\n  ptr sample examples/quickstart.pt-recipe --prompt "Once upon"\n  ptr sample examples/arith/pipeline.pt-recipe --stage sft --prompt "12+7=" --stop $'\\n'\n${EXIT_HELP}`)
    .action(async (file: string, opts: { stage?: string; run?: string; prompt?: string; system?: string; stop?: string[]; tokens?: number; temperature?: number; seed?: number }) =>
      setCode(await runSample(io, file, opts)),
    );

  return program;
}

/**
 * Runs `ptr` with the given arguments (without `node` and the script path)
 * and returns the exit code. Never throws.
 */
export async function main(args: readonly string[], io: Io = processIo()): Promise<number> {
  let code: number = EXIT.ok;
  try {
    const program = buildProgram(io, (c) => {
      code = c;
    });
    await program.parseAsync([...args], { from: 'user' });
    return code;
  } catch (e) {
    // --help and --version also arrive here, as CommanderErrors with exit code 0.
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (e instanceof UsageError) {
      io.err(`${paint(io, 'red', 'error')}: ${e.message}\n`);
      return EXIT.usage;
    }
    // NotYetSupported: the recipe is fine, this version cannot run it; any other
    // LoweringError means the checker passed something it should have reported (a bug).
    if (e instanceof UserError || e instanceof NotYetSupported) {
      io.err(`${paint(io, 'red', 'error')}: ${e.message}\n`);
      return e instanceof UserError ? e.exitCode : EXIT.diagnostics;
    }
    // A file system error from the environment (a full disk, a read-only folder): exit 1 with the path and what to do.
    const system = fileSystemError(e);
    if (system) {
      io.err(`${paint(io, 'red', 'error')}: ${system.message}\n`);
      return EXIT.diagnostics;
    }
    reportInternalError(io, e);
    return EXIT.internal;
  }
}

/**
 * `--stage NAME` must name a stage of the recipe: checked here, before any work, so a
 * typo is a usage error listing the stages. A file that cannot be read or parsed is
 * left to the command, which reports it with its diagnostics.
 */
function checkStageOption(file: unknown, stage: unknown): void {
  if (typeof file !== 'string' || typeof stage !== 'string') return;
  const source = readSource(file);
  if (!('text' in source)) return;
  const bag = new DiagnosticBag();
  const recipe = parseRecipe(source.text, file, bag);
  if (bag.items.some((d) => d.severity === 'error')) return;
  const stages = recipe.declarations.flatMap((d) => (d.kind === 'StageDecl' ? [d.name.name] : []));
  if (!stages.includes(stage)) {
    throw new UsageError(`--stage ${stage}: ${file} has no stage '${stage}' (${stages.length ? `its stages: ${stages.join(', ')}` : 'it has no stages'})`);
  }
}

function reportInternalError(io: Io, e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  io.err(
    `${paint(io, 'red', 'internal error')}: ${message}\n` +
      'This is a bug in pt-recipe, not in your recipe. Please report it with the command line and the recipe that caused it.\n',
  );
  // The stack helps whoever fixes the bug, but is noise for everyone else.
  if (process.env.PTR_DEBUG && e instanceof Error && e.stack) io.err(`${e.stack}\n`);
}

/** Entry point used by bin/ptr.js: runs `ptr` on process.argv and sets the process exit code. */
export async function run(): Promise<void> {
  // `ptr ast big.pt-recipe | head` closes the pipe early; that is not an error worth a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
      process.stderr.write(`ptr: cannot write output: ${err.message}\n`);
      process.exit(EXIT.internal);
    });
  }
  // Setting exitCode (rather than calling process.exit) lets buffered output drain first.
  process.exitCode = await main(process.argv.slice(2));
}
