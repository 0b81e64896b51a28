// `crosslink check` and `crosslink status` without loading yargs. Monitoring runs `check` every
// minute for every service it watches, and yargs alone cost ~170 ms of a ~300 ms run here (its ESM
// graph, not our code). These two commands' options are plain tables (cli/commands/health.ts) that
// yargs reads for help and errors; this reads the same tables with node:util's parseArgs and hands
// the handler what yargs would have. Anything it does not take as ordinary — help, completion, an
// unknown or malformed option, a positional word, a repeated switch — returns null, and the caller
// runs yargs as before, so every message and exit code for a mistake stays yargs's own.
// test/cli fast-path.test.ts holds both parsers equal over a table of command lines.
import { parseArgs } from 'node:util';
import type { Options } from 'yargs';

type OptionTable = Record<string, Options>;
type ParseOptions = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

const camel = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The arguments (camelCase and as named) yargs would hand the command's handler for `args` (the words after the
 *  command), or null when the command line needs yargs. */
export function parseWithTable(args: readonly string[], table: OptionTable): Record<string, unknown> | null {
  if (args.some((a) => a === '-h' || a === '--help' || a === '--version' || a.startsWith('--get-yargs-completions')))
    return null;
  const options: NonNullable<ParseOptions> = {};
  for (const [name, o] of Object.entries(table)) {
    // An option with choices and no type (`agent run --wireguard`) is a word.
    const type = o.type ?? (o.choices ? 'string' : undefined);
    if (type !== 'string' && type !== 'number' && type !== 'boolean') return null;
    options[name] = { type: type === 'boolean' ? 'boolean' : 'string', multiple: true };
    if (typeof o.alias === 'string' && o.alias.length === 1) options[name].short = o.alias;
  }
  let values: Record<string, Array<string | boolean> | undefined>;
  try {
    values = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values as typeof values;
  } catch {
    return null;
  }
  const out: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(table)) {
    const given = values[name];
    let value: unknown;
    if (given === undefined) value = o.default;
    else if (o.type === 'boolean') {
      if (given.length > 1) return null;
      value = given[0];
    } else {
      const texts = given as string[];
      if (o.type === 'number' && texts.some((x) => x.trim() === '')) return null;
      const list = o.type === 'number' ? texts.map(Number) : texts;
      // yargs: an array option is always a list; any other repeated option becomes one.
      value = o.array || list.length > 1 ? list : list[0];
      // Not one of the choices: yargs's message says which are.
      if (o.choices && !list.every((x) => (o.choices as unknown[]).includes(x))) return null;
    }
    // Both spellings, as yargs gives them: agent/config.ts's settingsFromFlags reads 'state-dir'.
    if (value !== undefined) out[name] = out[camel(name)] = value;
  }
  return out;
}

/** Runs `crosslink check …` or `crosslink status …` if the command line is an ordinary one; false
 *  when yargs must take it. */
export async function runHealthCommandFast(argv: readonly string[]): Promise<boolean> {
  const health = await import('./commands/health.js');
  const [command, ...rest] = argv;
  if (command === 'check') {
    const args = parseWithTable(rest, health.CHECK_OPTIONS);
    if (args === null) return false;
    process.exitCode = await health.runCheck(args);
    return true;
  }
  if (command === 'status') {
    const args = parseWithTable(rest, health.STATUS_OPTIONS);
    if (args === null) return false;
    process.exitCode = await health.runStatus(args);
    return true;
  }
  return false;
}
