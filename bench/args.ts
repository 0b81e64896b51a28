// Command-line options of the benchmarks: `--name value` and `--flag`.
export const benchArgs = process.argv.slice(2);

/** The value after `--name`, or `dflt` when absent. */
export function textArg(name: string, dflt: string): string {
  const i = benchArgs.indexOf(`--${name}`);
  return i >= 0 && benchArgs[i + 1] ? benchArgs[i + 1]! : dflt;
}

/** The number after `--name`, or `dflt` when absent. */
export function numberArg(name: string, dflt: number): number {
  const v = textArg(name, '');
  return v === '' ? dflt : Number(v);
}

/** True when `--name` is given. */
export function hasFlag(name: string): boolean {
  return benchArgs.includes(`--${name}`);
}
