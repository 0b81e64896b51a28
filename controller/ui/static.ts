// The web view's built files (dist/ui/: app.js, app.css, a source map), served from that one
// directory and nothing under or above it. A request names a plain file name; anything with a
// slash, a dot-dot or an unknown type is a 404 before the file system is touched.
import { existsSync } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  woff2: 'font/woff2',
};

/** A file name the assets route may serve: letters, digits, ".", "_", "-", a known extension, no "..". */
export function assetContentType(name: string): string | null {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name) || name.includes('..')) return null;
  const ext = name.slice(name.lastIndexOf('.') + 1);
  return name.includes('.') ? (CONTENT_TYPES[ext] ?? null) : null;
}

/**
 * dist/ui of this installation: up from this module (controller/ui/ under tsx, dist/controller/ui/
 * when built, /usr/lib/crosslink/dist/controller/ui/ in the package) to the directory holding
 * package.json.
 */
export function defaultAssetsDir(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'dist', 'ui');
    const up = dirname(dir);
    if (up === dir) return join(dirname(from), 'dist', 'ui'); // no package.json anywhere: nothing will be found
    dir = up;
  }
}

export interface Asset {
  body: Buffer;
  contentType: string;
}

/** The asset `name` in `dir`, or null: not a servable name, not there, not a regular file, or outside `dir`. */
export async function readAsset(dir: string, name: string): Promise<Asset | null> {
  const contentType = assetContentType(name);
  if (contentType === null) return null;
  try {
    // A symbolic link out of the directory is refused like a "../".
    const [root, path] = await Promise.all([realpath(dir), realpath(join(dir, name))]);
    if (dirname(path) !== root || !path.startsWith(root + sep)) return null;
    if (!(await stat(path)).isFile()) return null;
    return { body: await readFile(path), contentType };
  } catch {
    return null; // ENOENT and its kind: not there
  }
}

/** Whether the browser app was built (the shell says how to build it otherwise). */
export function isAppBuilt(dir: string): boolean {
  return existsSync(join(dir, 'app.js'));
}
