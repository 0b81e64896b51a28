// The fast path for `check` and `status` must hand the handler exactly what yargs would, for every
// command line it takes, and leave to yargs every one it cannot take as ordinary.
import t from 'tap';
import yargs from 'yargs';
import type { Options } from 'yargs';
import { parseWithTable } from './fast-path.js';
import { CHECK_OPTIONS, STATUS_OPTIONS } from './commands/health.js';
import { RUN_OPTIONS } from './commands/agent.js';

/** What the command's handler gets from yargs, set up as cli/run.ts sets it up; null on a usage error. */
async function viaYargs(
  command: string,
  args: string[],
  table: Record<string, Options>,
): Promise<Record<string, unknown> | null> {
  let got: Record<string, unknown> | null = null;
  try {
    await yargs([command, ...args])
      .command(
        command,
        '',
        (y) => y.options(table),
        (a) => {
          got = a;
        },
      )
      .strict()
      .version(false)
      .help(false)
      .detectLocale(false)
      .fail((msg, err) => {
        throw err ?? new Error(msg);
      })
      .parseAsync();
  } catch {
    return null;
  }
  return got;
}

const camel = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const FP = 'ab'.repeat(32);
const TABLES: Record<string, Record<string, Options>> = {
  check: CHECK_OPTIONS,
  status: STATUS_OPTIONS,
  run: RUN_OPTIONS,
};

const ordinary: Array<[string, string[]]> = [
  ['check', []],
  ['check', ['--controller', 'https://ctl:8443', '--token', 'tok', '--ca-fingerprint', FP]],
  ['check', ['--controller=https://ctl:8443', '--timeout', '2.5', '--json']],
  ['check', ['--controller', 'https://a:8443', '--controller', 'https://b:8443']],
  ['check', ['-w', 'rtt=50', '-c', 'rtt=200', '-w', 'loss=5', '--critical', 'loss=20']],
  ['check', ['-w', 'rtt=50']],
  ['check', ['--warning=rtt=~:10', '-c', 'handshake=@10:20']],
  ['check', ['--agent', 'gp-surgery', '--link', 'a:b', '--probe', 'rule/0']],
  ['check', ['--timeout', 'abc']],
  ['check', ['--timeout', '0x10']],
  ['check', ['--timeout', '1e1']],
  ['status', ['--json']],
  ['status', ['--controller', 'https://ctl:8443', '--timeout', '3']],
  ['run', []],
  ['run', ['--state-dir', '/var/lib/crosslink/agent', '--config', '/etc/crosslink/agent.yaml']],
  ['run', ['--join', 'tok', '--name', 'leeds-gw', '--listen-port', '51821', '--relay', '--wireguard', 'userspace']],
  ['run', ['--endpoint', 'n3=192.0.2.1:51820', '--endpoint', 'psn=198.51.100.1:51820', '--mtu', 'abc']],
  ['run', ['--ipfix-collector', '192.0.2.9', '--flow-log-mb=0', '--advertise', '10.0.0.0/24,10.0.1.0/24']],
];

// Left to yargs: its help, completion and usage errors are the messages users see.
const forYargs: Array<[string, string[]]> = [
  ['check', ['--help']],
  ['check', ['-h']],
  ['check', ['--version']],
  ['check', ['--nope']],
  ['check', ['extra-word']],
  ['check', ['--timeout', '-1']],
  ['check', ['--timeout=']],
  ['check', ['--json', '--json']],
  ['check', ['--json=false']],
  ['check', ['--no-json']],
  ['check', ['--agent']],
  ['status', ['-w', 'rtt=5']],
  ['status', ['--get-yargs-completions', 'check']],
  ['run', ['--wireguard', 'wireguard-go']],
  ['run', ['--wireguard']],
  ['run', ['--no-relay']],
  ['run', ['--help']],
];

t.test('ordinary command lines: the same arguments as yargs gives', async (t) => {
  for (const [command, args] of ordinary) {
    const table = TABLES[command]!;
    const fast = parseWithTable(args, table);
    const slow = await viaYargs(command, args, table);
    const label = `${command} ${args.join(' ')}`;
    t.not(fast, null, `${label}: taken by the fast path`);
    t.not(slow, null, `${label}: yargs takes it too`);
    if (fast === null || slow === null) continue;
    for (const name of Object.keys(table)) {
      const key = camel(name);
      t.same(fast[key], slow[key], `${label}: ${key}`);
      // agent/config.ts's settingsFromFlags reads the options as named ('state-dir').
      t.same(fast[name], slow[name], `${label}: ${name}`);
    }
  }
});

t.test('anything else is left to yargs', async (t) => {
  for (const [command, args] of forYargs) {
    t.equal(parseWithTable(args, TABLES[command]!), null, `${command} ${args.join(' ')}`);
  }
});
