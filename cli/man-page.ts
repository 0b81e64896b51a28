// Builds crosslink(1) from the commands themselves: the help text of every command and subcommand,
// as `crosslink … --help` prints it, under a roff header. scripts/build-deb.sh installs it as
// /usr/share/man/man1/crosslink.1.gz, so `man crosslink` never drifts from the program.
//
//   node dist/cli/man-page.js [CLI_ENTRY] > crosslink.1
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = process.argv[2] ?? fileURLToPath(new URL('./main.js', import.meta.url));

function help(words: string[]): string {
  const r = spawnSync(process.execPath, [entry, ...words, '--help'], {
    encoding: 'utf8',
    env: { ...process.env, COLUMNS: '100' },
  });
  if (r.status !== 0) throw new Error(`crosslink ${words.join(' ')} --help exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The command names listed under "Commands:" of a help text ("crosslink policy apply ..." -> "apply"). */
function subcommands(text: string, words: string[]): string[] {
  const at = text.indexOf('Commands:');
  if (at < 0) return [];
  const block = text.slice(at).split('\n\n')[0]!.split('\n').slice(1);
  const prefix = ['crosslink', ...words].join(' ');
  return block
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${prefix} `))
    .map((l) => l.slice(prefix.length + 1).split(/\s+/)[0]!)
    .filter((w) => w !== '' && !w.startsWith('[') && !w.startsWith('<'));
}

/** roff-safe text: backslashes doubled, lines starting with "." or "'" guarded. */
const roff = (text: string): string =>
  text
    .replace(/\\/g, '\\e')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');

const out: string[] = [];
const { VERSION } = await import('../lib/version.js');
out.push(`.TH CROSSLINK 1 "" "crosslink ${VERSION}" "Crosslink"`);
out.push(
  '.SH NAME',
  'crosslink \\- link selected subnets of two networks through a WireGuard overlay under one policy',
);
out.push('.SH SYNOPSIS', '.B crosslink', '.I command', '[options]');
out.push(
  '.SH DESCRIPTION',
  'One program for the controller, the agent on each edge box, the policy tools and the API client. Each command below is shown with its own help. Exit codes: 0 done, 1 refused or failed, 2 usage, 3 cannot reach the controller (for \\fBcrosslink check\\fR, the Nagios codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). The documentation is in /usr/share/doc/crosslink.',
);
const queue: string[][] = [[]];
const seen = new Set<string>();
while (queue.length > 0) {
  const words = queue.shift()!;
  const key = words.join(' ');
  if (seen.has(key)) continue;
  seen.add(key);
  const text = help(words);
  out.push(
    `.SH ${words.length === 0 ? 'COMMANDS' : `crosslink ${key}`.toUpperCase()}`,
    '.nf',
    roff(text.trimEnd()),
    '.fi',
  );
  for (const sub of subcommands(text, words))
    if (sub !== 'completion' && sub !== 'version') queue.push([...words, sub]);
}
out.push(
  '.SH SEE ALSO',
  'The README and docs/ in /usr/share/doc/crosslink: deploying-an-agent.md, policy.md, health.md, api.md, errors.md.',
);
process.stdout.write(`${out.join('\n')}\n`);
