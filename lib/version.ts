import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// Works from the source tree (lib/) and from the build (dist/lib/): package.json is found upwards.
function readVersion(): string {
  for (const p of ['../package.json', '../../package.json']) {
    try {
      const pkg = require(p) as { name?: string; version?: string };
      if (pkg.name === 'crosslink' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}
export const VERSION = readVersion();
