/**
 * `npm run docs`: writes the generated standard-library reference,
 * stdlib/REFERENCE.md (see src/check/stdlibReference.ts). Not a `ptr` command:
 * it regenerates a file of this repository.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findStdlibDir } from '../check/modules.js';
import { stdlibReference } from '../check/stdlibReference.js';

const stdlibDir = findStdlibDir();
const target = join(stdlibDir, 'REFERENCE.md');
try {
  writeFileSync(target, stdlibReference({ stdlibDir }));
  process.stdout.write(`wrote ${target}\n`);
} catch (e) {
  process.stderr.write(`docs: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
