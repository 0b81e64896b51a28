// Reads a file the user named on the command line; "-" is standard input (`-f -`, as most tools).
import { readFileSync } from 'node:fs';

export function readInput(path: string): string {
  return readFileSync(path === '-' ? 0 : path, 'utf8');
}

/** How the input is named in messages: "FILE", or "<stdin>" for "-". */
export function inputName(path: string): string {
  return path === '-' ? '<stdin>' : path;
}
