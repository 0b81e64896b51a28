// docs/errors.md and lib/errors.ts list the same codes with the same HTTP statuses.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../../lib/errors.js';

t.test('docs/errors.md lists every error code with its status, and nothing else', async (t) => {
  const text = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map<string, number>();
  for (const m of text.matchAll(/^\|\s*`([a-z_]+)`\s*\|\s*(\d{3})\s*\|/gm)) documented.set(m[1]!, Number(m[2]));
  const inCode = new Map(Object.entries(ERROR_CODES).map(([code, v]) => [code, v.status as number]));
  t.same([...documented.keys()].sort(), [...inCode.keys()].sort(), 'same codes');
  for (const [code, status] of inCode)
    t.equal(documented.get(code), status, `${code} has status ${status} in the docs`);
});
