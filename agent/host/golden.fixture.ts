// Golden-file assertion for rendered wg/ip/nft input: compares with the file, or rewrites it when
// UPDATE_GOLDEN=1.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Tap {
  equal(found: unknown, wanted: unknown, message: string): unknown;
  fail(message: string): unknown;
}

export function matchGolden(t: Tap, relPath: string, actual: string): void {
  const file = resolve(REPO, relPath);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) {
    t.fail(`golden file ${relPath} is missing (run with UPDATE_GOLDEN=1)`);
    return;
  }
  t.equal(actual, readFileSync(file, 'utf8'), `matches ${relPath}`);
}
