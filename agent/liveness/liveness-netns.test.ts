// Two echo runners in two namespaces over a real wireguard-go tunnel, behind the agent's rendered
// liveness firewall: both go 'up'; with one end's WireGuard link down both go 'down' within
// multiplier x interval + one interval (plus slack for a loaded machine); 'up' again after.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { isRoot, must, NetnsFixture, sh } from '../host/linux/netns.fixture.js';
import { renderFirewall } from '../host/firewall-render.js';
import { firewall } from '../host/firewall.fixture.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PORT = 51821;
const INTERVAL = 100;
const MULT = 3;
/** Detection bound of the state machine, plus slack for timers and wireguard-go on 2 busy cores. */
const BOUND_MS = MULT * INTERVAL + INTERVAL;
const SLACK_MS = 600;

type Event = { atMs: number; name: string; state: string };

if (!isRoot()) {
  t.plan(0, 'needs root (network namespaces)');
} else if (sh(['wireguard-go', '--version']).code !== 0) {
  t.plan(0, 'needs wireguard-go');
} else {
  const fx = new NetnsFixture();
  const dir = mkdtempSync(join(tmpdir(), 'xl-liveness-'));
  t.teardown(() => {
    fx.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const [a, b] = [fx.addNetns('a'), fx.addNetns('b')];
  must(['ip', 'link', 'add', 'u0', 'netns', a, 'type', 'veth', 'peer', 'name', 'u0', 'netns', b]);
  const key = (n: string) => {
    const priv = must(['wg', 'genkey']).trim();
    writeFileSync(join(dir, `${n}.key`), `${priv}\n`, { mode: 0o600 });
    return must(['wg', 'pubkey'], `${priv}\n`).trim();
  };
  const boxes = [
    { ns: a, name: 'a', underlay: '10.78.0.1', overlay: '100.64.0.1', wg: fx.ifname('a'), pub: key('a') },
    { ns: b, name: 'b', underlay: '10.78.0.2', overlay: '100.64.0.2', wg: fx.ifname('b'), pub: key('b') },
  ];
  for (const x of boxes) {
    must(['ip', '-n', x.ns, 'addr', 'add', `${x.underlay}/24`, 'dev', 'u0']);
    must(['ip', '-n', x.ns, 'link', 'set', 'u0', 'up']);
    const wg = spawn('ip', ['netns', 'exec', x.ns, 'wireguard-go', '-f', x.wg], {
      env: { ...process.env, LOG_LEVEL: 'error', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' },
      stdio: 'ignore',
    });
    fx.trackPid(wg.pid!);
    for (let i = 0; sh(['ip', 'netns', 'exec', x.ns, 'wg', 'show', x.wg]).code !== 0; i++) {
      if (i > 250) throw new Error(`wireguard-go ${x.wg} did not start`);
      sh(['sleep', '0.02']);
    }
  }
  for (const [x, y] of [
    [boxes[0]!, boxes[1]!],
    [boxes[1]!, boxes[0]!],
  ] as const) {
    const wgSet = ['ip', 'netns', 'exec', x.ns, 'wg', 'set', x.wg];
    must([...wgSet, 'private-key', join(dir, `${x.name}.key`), 'listen-port', '51820']);
    must([...wgSet, 'peer', y.pub, 'endpoint', `${y.underlay}:51820`, 'allowed-ips', `${y.overlay}/32`]);
    must(['ip', '-n', x.ns, 'addr', 'add', `${x.overlay}/24`, 'dev', x.wg]);
    must(['ip', '-n', x.ns, 'link', 'set', x.wg, 'up']);
    // The agent's ruleset for a box with serving groups: the port only from the overlay.
    const ruleset = renderFirewall(firewall({}), {
      wgInterface: x.wg,
      liveness: { port: PORT, overlayPrefixes: ['100.64.0.0/24'], lanPrefixes: [] },
    });
    must(['ip', 'netns', 'exec', x.ns, 'nft', '-f', '-'], ruleset);
  }

  /** The echo process of box x, with its events. */
  const start = (x: (typeof boxes)[number], peer: (typeof boxes)[number]) => {
    const child: ChildProcess = spawn(
      'ip',
      [
        'netns',
        'exec',
        x.ns,
        process.execPath,
        '--import',
        join(REPO, 'bench/register.js'),
        join(REPO, 'agent/liveness/echo-process.fixture.ts'),
        String(PORT),
        String(INTERVAL),
        String(MULT),
        `${peer.name}=${peer.overlay}`,
      ],
      { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    fx.trackPid(child.pid!);
    const events: Event[] = [];
    let isReady = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as Event | { ready: boolean };
      if ('ready' in m) isReady = m.ready;
      else events.push(m);
    });
    return { child, events, isReady: () => isReady };
  };
  const ea = start(boxes[0]!, boxes[1]!);
  const eb = start(boxes[1]!, boxes[0]!);
  t.teardown(() => {
    for (const e of [ea, eb]) e.child.stdin?.end();
  });

  const stateOf = (events: Event[]) => events[events.length - 1]?.state ?? 'init';
  const waitFor = async (cond: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 10)))
      if (Date.now() > end) return false;
    return true;
  };

  t.test('up, down within multiplier x interval + one interval of the cut, up again', async (t) => {
    t.ok(await waitFor(() => ea.isReady() && eb.isReady(), 15_000), 'both runners bound udp4 and udp6');
    t.ok(await waitFor(() => stateOf(ea.events) === 'up' && stateOf(eb.events) === 'up', 10_000), 'both up');

    const cutAt = Date.now();
    must(['ip', '-n', a, 'link', 'set', boxes[0]!.wg, 'down']);
    t.ok(await waitFor(() => stateOf(ea.events) === 'down' && stateOf(eb.events) === 'down', 5_000), 'both down');
    for (const [name, e] of [
      ['a', ea],
      ['b', eb],
    ] as const) {
      const down = e.events.find((x) => x.state === 'down' && x.atMs >= cutAt);
      const ms = (down?.atMs ?? Infinity) - cutAt;
      t.ok(ms <= BOUND_MS + SLACK_MS, `${name} saw the cut after ${ms} ms (bound ${BOUND_MS} + ${SLACK_MS} slack)`);
    }

    const upAt = Date.now();
    must(['ip', '-n', a, 'link', 'set', boxes[0]!.wg, 'up']);
    t.ok(await waitFor(() => stateOf(ea.events) === 'up' && stateOf(eb.events) === 'up', 10_000), 'both up again');
    t.comment(`up again after ${Math.max(...[ea, eb].map((e) => e.events[e.events.length - 1]!.atMs)) - upAt} ms`);
  });
}
