#!/usr/bin/env node
// The `ptr` command. The CLI itself is TypeScript compiled to dist/ (npm ci and npm run build do that).
let cli;
try {
  cli = await import('../dist/src/cli/main.js');
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli/main.js')) {
    process.stderr.write('ptr: the compiled CLI (dist/) is missing; run `npm run build` in the pt-recipe folder first.\n');
    process.exit(70);
  }
  throw e;
}
await cli.run();
