/**
 * README.md's command table against the real command line: every command that
 * `ptr --help` lists has a row, and every option a row names exists on its command
 * (so the table neither misses a command nor documents an option that is gone).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Io } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

/** The text `ptr ARGS` prints to stdout. */
async function helpText(args: readonly string[]): Promise<string> {
  const out: string[] = [];
  const io: Io = { out: (t) => void out.push(t), err: () => undefined, color: false };
  expect(await main(args, io)).toBe(0);
  return out.join('');
}

/** The command names under "Commands:" in `ptr --help` (commander's own `help` aside). */
function commandsOf(help: string): string[] {
  const section = help.split(/^Commands:\n/m)[1] ?? '';
  const names: string[] = [];
  for (const line of section.split('\n')) {
    if (line.trim() === '') break;
    const m = /^ {2}([a-z][\w-]*)/.exec(line);
    if (m && m[1] !== 'help') names.push(m[1]!);
  }
  return names;
}

/** The long option names (`--json`) under "Options:" in `ptr COMMAND --help`. */
function optionsOf(help: string): Set<string> {
  const section = help.split(/^Options:\n/m)[1] ?? '';
  return new Set([...section.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]!));
}

/** First cell and whole text of each row of the table under "## Command line". */
function readmeRows(): { command: string; text: string }[] {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.split(/^## Command line\n/m)[1]?.split(/^## /m)[0] ?? '';
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `ptr'))
    .map((l) => ({ command: l.split(/(?<!\\)\|/)[1]!.trim(), text: l }));
}

describe('README command table', () => {
  let commands: string[] = [];
  beforeAll(async () => {
    commands = commandsOf(await helpText(['--help']));
  });

  it('ptr --help lists the commands we expect to find', () => {
    expect(commands).toEqual(expect.arrayContaining(['check', 'types', 'fmt', 'ast', 'compile', 'ir', 'gradcheck', 'run', 'sample']));
  });

  it('has a row for every command of ptr --help', () => {
    const rows = readmeRows();
    const missing = commands.filter((c) => !rows.some((r) => new RegExp(`^\`ptr ${c}[\\s\`]`).test(r.command)));
    expect(missing, `README.md's command table has no row for: ${missing.join(', ')}`).toEqual([]);
  });

  it('names only options that its command has', async () => {
    const wrong: string[] = [];
    for (const row of readmeRows()) {
      const command = /^`ptr ([a-z][\w-]*)/.exec(row.command)?.[1];
      if (!command || !commands.includes(command)) continue;
      const options = optionsOf(await helpText([command, '--help']));
      for (const m of row.text.matchAll(/(?<![\w-])(--[a-z][\w-]*)/g)) {
        if (!options.has(m[1]!)) wrong.push(`ptr ${command} ${m[1]}`);
      }
    }
    expect(wrong, `README.md names options that do not exist: ${wrong.join(', ')}`).toEqual([]);
  });
});
