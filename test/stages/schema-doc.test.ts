/** stdlib/README.md shows the data schema and the setting defaults as the tables in src/check define them. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DATASET_FORMATS } from '../../src/check/dataSchema.js';
import { STAGE_KINDS } from '../../src/check/stageRules.js';

const readme = readFileSync('stdlib/README.md', 'utf8');

describe('stdlib/README.md', () => {
  it('lists every dataset format with exactly the batch fields of the data schema', () => {
    for (const [format, spec] of Object.entries(DATASET_FORMATS)) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${format}\` |`));
      const fields = spec.fields.map((f) => `\`${f.name}: ${f.dtype}[${f.dims.join(', ')}]\``).join(', ');
      expect(row, format).toBe(`| \`${format}\` | ${fields} |`);
    }
  });

  it("states every train setting's default as the stage-kind table has it", () => {
    const defaults = readme.split('\n- Defaults')[1]!.split('\n- ')[0]!.replace(/\s+/g, ' ');
    for (const [name, spec] of Object.entries(STAGE_KINDS['train']!.settings)) {
      if (spec.default !== undefined) expect(defaults).toContain(`\`${name} = ${spec.default}\``);
      if (spec.defaultCall) {
        const args = Object.entries(spec.defaultCall.args).map(([k, v]) => `${k}: ${v.toExponential().replace(/e([+-])(\d+)/, (_, s, d) => `e${s === '-' ? '-' : ''}${d}`).replace(/^(\d)\.?0*e/, '$1e')}`);
        expect(defaults).toContain(`\`${name} = ${spec.defaultCall.name}(${args.join(', ')})\``);
      }
    }
  });
});
