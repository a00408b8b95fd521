/**
 * The `ptr` command line: commander wiring, exit codes and the last line of
 * defence against crashes. Each command lives in its own module and returns
 * its exit code; this file only parses arguments and maps failures:
 *
 *   0  ok
 *   1  the input has problems (diagnostics were printed)
 *   2  the command line is wrong (unknown option or command, missing file argument)
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
    reportInternalError(io, e);
    return EXIT.internal;
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
