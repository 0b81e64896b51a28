// Golden test of the exact commands the Linux adapters run (no root needed: a recording runner
// answers). UPDATE_GOLDEN=1 rewrites test/golden/host/linux-commands.txt.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { matchGolden } from '../golden.fixture.js';
import { renderFirewall } from '../firewall-render.js';
import { firewall, flow } from '../firewall.fixture.js';
import { createLinuxHost } from './host.js';
import { RecordingRunner } from './run.js';
import { parseWgDump } from './wireguard.js';
import { parseIpAddrJson } from './links.js';

const IF = 'crosslink0';

t.test('commands for one full apply, then the reads', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xlh-cmd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'private.key');
  writeFileSync(keyFile, 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n', { mode: 0o600 });
  const runner = new RecordingRunner()
    .on('ip link show dev', { exitCode: 1, stderr: `Device "${IF}" does not exist.` })
    .on('ip -json route show', {
      stdout:
        '[{"dst":"10.3.0.0/24","dev":"crosslink0","scope":"link","flags":[]},{"dst":"default","dev":"crosslink0","flags":[]}]',
    })
    .on('ip -json -6 route show', {
      stdout: '[{"dst":"2001:db8:2::/48","dev":"crosslink0","metric":1024,"flags":[],"pref":"medium"}]',
    })
    .on('nft list table', {
      stdout: 'table inet crosslink {\n\tcounter dropped_inbound {\n\t\tpackets 4 bytes 240\n\t}\n}\n',
    });
  const host = createLinuxHost({ runner, netns: 'box', tempDir: dir, firewall: { isWatching: false } });

  await host.wireguard.create(IF, 'kernel');
  await host.wireguard.sync(IF, {
    privateKeyFile: keyFile,
    listenPort: 51820,
    peers: [
      {
        publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
        endpoint: '192.0.2.2:51820',
        allowedIps: ['100.64.0.2/32', '10.2.0.0/24'],
        persistentKeepaliveSeconds: 25,
      },
    ],
  });
  await host.links.setUp(IF, 1420);
  await host.links.addAddress(IF, '100.64.0.1/10');
  await host.links.delAddress(IF, '100.64.0.9/10');
  await host.routes.apply({
    add: [
      { prefix: '10.2.0.0/24', dev: IF },
      { prefix: '2001:db8:2::/48', dev: IF },
      { prefix: '10.4.0.0/24', dev: IF },
    ],
    del: [
      { prefix: '10.3.0.0/24', dev: IF },
      { prefix: '10.4.0.0/24', dev: 'old0' },
    ],
  });
  await host.routes.apply({ add: [], del: [] }); // nothing to do: no command
  const fp = await host.firewall.replace(
    renderFirewall(firewall({ outbound: [flow('web', ['10.1.0.0/24'], ['10.2.0.0/24'], 'tcp', [443])] }), {
      wgInterface: IF,
    }),
  );
  await host.sysctl.set('net.ipv4.ip_forward', '1');
  t.same(await host.routes.observe(), [
    { prefix: '0.0.0.0/0', dev: IF },
    { prefix: '10.3.0.0/24', dev: IF },
    { prefix: '2001:db8:2::/48', dev: IF },
  ]);
  t.same(await host.firewall.observe(), { exists: true, fingerprint: fp }, 'fingerprint ignores counter values');
  await host.firewall.remove();
  matchGolden(t, 'test/golden/host/linux-commands.txt', runner.transcript(dir));
});

t.test('parsers', async (t) => {
  const dump = [
    'PRIVATE\tHIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\t51820\toff',
    'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\t(none)\t192.0.2.2:51820\t10.2.0.0/24,100.64.0.2/32\t1700000000\t1024\t2048\t25',
    'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=\t(none)\t(none)\t(none)\t0\t0\t0\toff',
  ].join('\n');
  const dev = parseWgDump(dump + '\n');
  t.equal(dev.publicKey, 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=');
  t.notMatch(
    JSON.stringify(dev, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
    /PRIVATE/,
    'the private key is dropped',
  );
  t.same(
    dev.peers.map((p) => p.publicKey),
    ['TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=', 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg='],
  );
  t.same(dev.peers[1], {
    publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
    endpoint: '192.0.2.2:51820',
    allowedIps: ['10.2.0.0/24', '100.64.0.2/32'],
    latestHandshakeUnix: 1700000000,
    rxBytes: 1024n,
    txBytes: 2048n,
    persistentKeepaliveSeconds: 25,
  });
  t.same(dev.peers[0]?.allowedIps, []);
  t.same(
    parseIpAddrJson(
      '[{"ifname":"x","flags":["POINTOPOINT","UP","LOWER_UP"],"mtu":1420,"addr_info":[{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"},{"family":"inet","local":"100.64.0.1","prefixlen":10,"scope":"global"}]}]',
    ),
    { exists: true, isUp: true, mtu: 1420, addresses: ['100.64.0.1/10'] },
  );
});

t.test('a watch that coalesces reads still hands over every line, whole and in order', async (t) => {
  const { ProcessRunner } = await import('./run.js');
  const keepAlive = setInterval(() => undefined, 1000); // a watcher holds no reference of its own
  t.teardown(() => clearInterval(keepAlive));
  const lines: string[] = [];
  let exited: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (exited = r));
  // Lines of varied length, written in bursts (awk flushes every 500 lines, then pauses), so that
  // reads end mid-line.
  const script =
    'awk \'BEGIN { for (i = 1; i <= 3000; i++) { s = ""; for (k = 0; k < (i % 97 > 0 ? i % 97 : 1); k++) s = s "0"; print "line " i " " s; if (i % 500 == 0) { fflush(); system("sleep 0.05") } } }\'; sleep 0.2';
  const w = new ProcessRunner().watch(['sh', '-c', script], { coalesceMs: 20 }, (l) => lines.push(l), exited);
  t.teardown(() => w.stop());
  t.equal(await done, 0);
  // Lines still in the pipe while reads were paused arrive after the exit.
  for (let i = 0; i < 100 && lines.length < 3000; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(lines.length, 3000);
  t.ok(
    lines.every((l, i) => l === `line ${i + 1} ${'0'.repeat(Math.max(1, (i + 1) % 97))}`),
    'every line whole and in order',
  );
});
