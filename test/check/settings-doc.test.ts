/** The language reference (stdlib/README.md) lists every setting the checker accepts. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEPLOY_FORMATS, STAGE_KINDS } from '../../src/check/stageRules.js';

const readme = readFileSync('stdlib/README.md', 'utf8');

/** The table row of the reference that starts with `name`. */
function row(name: string): string {
  return readme.split('\n').find((l) => l.startsWith(`| \`${name}\` |`)) ?? '';
}

describe('stdlib/README.md documents the settings', () => {
  for (const [kind, spec] of Object.entries(STAGE_KINDS)) {
    it(`stage kind ${kind}`, () => {
      const missing = Object.keys(spec.settings).filter((s) => !row(kind).includes(`\`${s}\``));
      expect(missing).toEqual([]);
      for (const r of spec.required) expect(row(kind)).toContain(`**\`${r}\`**`);
    });
  }
  for (const [target, spec] of Object.entries(DEPLOY_FORMATS)) {
    it(`deploy target ${target}`, () => {
      expect(Object.keys(spec.settings).filter((s) => !row(target).includes(`\`${s}\``))).toEqual([]);
    });
  }
});
