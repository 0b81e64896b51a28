// The testbed on real namespaces: real pings, TCP and UDP, wireguard-go, and a clean teardown.
// Needs root and the Debian packages from scripts/setup.sh; it fails (never skips) without them.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { isPidAlive } from './exec.js';
import { deleteWireGuard, manualTunnel, startWireGuardGo, waitForHandshake } from './manual-wg.js';
import { namespacesWithPrefix, Testbed } from './testbed.js';

const missing = Testbed.requirements();
if (missing.length > 0) {
  t.fail(
    `the namespace testbed cannot run on this machine; missing: ${missing.join('; ')}. Run scripts/setup.sh as root.`,
  );
} else {
  await t.test('a small topology carries real traffic and tears down clean', async (t) => {
    const bed = await Testbed.create(
      {
        controller: true,
        boxes: [
          { name: 'hosp', lans: [{ lan: 'n3', address: '10.10.1.1/24', address6: 'fd10:1::1/64' }] },
          {
            name: 'shared',
            lans: [
              { lan: 'psn', address: '10.20.1.1/24', address6: 'fd20:1::1/64' },
              { lan: 'n3b', address: '10.10.2.1/24' },
            ],
          },
        ],
        hosts: [
          { name: 'ws', lan: 'n3', address: '10.10.1.10/24', address6: 'fd10:1::10/64' },
          { name: 'srv', lan: 'psn', address: '10.20.1.10/24', address6: 'fd20:1::10/64' },
          { name: 'gp', lan: 'n3b', address: '10.10.2.10/24' },
        ],
      },
      { t },
    );
    const [hosp, shared] = [bed.box('hosp'), bed.box('shared')];
    const quick = { count: 2, intervalMs: 50, timeoutMs: 500 };

    t.test('names: one prefix, interface names within 15 characters, distinct WireGuard names', async (t) => {
      t.match(bed.prefix, /^xl[a-z0-9]{4}$/);
      t.same(
        bed.namespaces.filter((n) => !n.startsWith(`${bed.prefix}-`)),
        [],
      );
      t.same(namespacesWithPrefix(bed.prefix), [...bed.namespaces].sort());
      t.equal(new Set(bed.boxes.map((b) => b.wgInterface)).size, 2);
      for (const b of bed.boxes)
        t.ok(b.wgInterface.length <= 15 && b.wgInterface.startsWith(bed.prefix), b.wgInterface);
      const fwd = await bed.exec(hosp, ['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']);
      t.same(fwd.stdout.trim().split('\n'), ['1', '1'], 'IPv4 and IPv6 forwarding on in the box');
    });

    t.test('a LAN host reaches its own box, IPv4 and IPv6', async (t) => {
      t.same(await bed.ping('ws', hosp.lans[0]!.address, quick), { sent: 2, received: 2 });
      t.same(await bed.ping('ws', 'fd10:1::1', quick), { sent: 2, received: 2 });
      t.same(await bed.ping('gp', shared.lans[1]!.address, quick), { sent: 2, received: 2 });
    });

    t.test('boxes reach each other and the controller over the underlay', async (t) => {
      t.same(await bed.ping(hosp, shared.wanAddress, quick), { sent: 2, received: 2 });
      t.same(await bed.ping(shared, hosp.wanAddress6, quick), { sent: 2, received: 2 });
      t.same(await bed.ping(hosp, bed.controller.address, quick), { sent: 2, received: 2 });
    });

    t.test('the two LANs of one box are routed through it (no firewall yet)', async (t) => {
      t.same(await bed.ping('gp', '10.20.1.10', quick), { sent: 2, received: 2 });
    });

    t.test('LAN hosts behind different boxes cannot reach each other (no overlay yet)', async (t) => {
      t.same((await bed.ping('ws', '10.20.1.10', quick)).received, 0);
      t.same((await bed.ping('ws', 'fd20:1::10', quick)).received, 0);
      const l = await bed.listen('srv', 'tcp', 443);
      t.not(await bed.tcpProbe('ws', '10.20.1.10', 443, { timeoutMs: 500 }), 'open');
      t.equal(
        await bed.tcpProbe('gp', '10.20.1.10', 443),
        'open',
        'while the same server is reachable from the other LAN of its box',
      );
      await l.waitForSource('10.10.2.10');
      t.same(l.sources(), ['10.10.2.10'], 'the server sees the real source address');
      await l.close();
      t.notOk(isPidAlive(l.pid), 'listener stopped by PID');
    });

    t.test('TCP and UDP probes tell open, refused and replied apart', async (t) => {
      const tcp = await bed.listen('srv', 'tcp', 8443);
      const udp = await bed.listen('srv', 'udp', 5353);
      t.equal(await bed.tcpProbe(shared, '10.20.1.10', 8443), 'open');
      t.ok(await bed.tcpConnect(shared, 'fd20:1::10', 8443, 1000), 'IPv6 too');
      t.equal(await bed.tcpProbe(shared, '10.20.1.10', 8444), 'refused');
      t.equal(await bed.udpProbe(shared, '10.20.1.10', 5353), 'reply');
      t.ok(await bed.udpExchange('gp', '10.20.1.10', 5353, { payload: 'hello' }));
      t.equal(await bed.udpProbe(shared, '10.20.1.10', 5354), 'refused');
      await udp.waitForSource('10.10.2.10');
      t.same(udp.sources(), ['10.20.1.1', '10.10.2.10']);
      await Promise.all([tcp.close(), udp.close()]);
    });

    t.test('the underlay can drop UDP or everything between two boxes, and lose packets', async (t) => {
      const udp = await bed.listen(shared, 'udp', 51999);
      t.ok(await bed.udpExchange(hosp, shared.wanAddress, 51999));
      await bed.blockUnderlay(hosp, shared);
      t.equal(await bed.udpProbe(hosp, shared.wanAddress, 51999, { timeoutMs: 500 }), 'timeout', 'UDP dropped');
      t.same(await bed.ping(hosp, shared.wanAddress, quick), { sent: 2, received: 2 }, 'ICMP still passes');
      t.ok(await bed.udpExchange('controller', shared.wanAddress, 51999), 'other pairs unaffected');
      await bed.blockUnderlay(hosp, shared, { proto: 'all' });
      t.same((await bed.ping(hosp, shared.wanAddress, quick)).received, 0, 'everything dropped');
      await bed.unblockUnderlay(shared, hosp);
      t.ok(await bed.udpExchange(hosp, shared.wanAddress, 51999), 'unblocked');
      await bed.setUnderlayLoss(shared, 100);
      t.same((await bed.ping(hosp, shared.wanAddress, quick)).received, 0, '100 % loss');
      await bed.setUnderlayLoss(shared, 0);
      t.same(await bed.ping(hosp, shared.wanAddress, quick), { sent: 2, received: 2 }, 'loss removed');
      await bed.setUnderlayLinkUp(shared, false);
      t.same((await bed.ping(hosp, shared.wanAddress, quick)).received, 0, 'cable pulled');
      await bed.setUnderlayLinkUp(shared, true);
      t.same(
        await bed.ping(hosp, shared.wanAddress, { ...quick, timeoutMs: 2000 }),
        { sent: 2, received: 2 },
        'cable back',
      );
      await udp.close();
    });

    t.test('a wireguard-go interface comes and goes inside a box namespace', async (t) => {
      const dev = await startWireGuardGo(bed, hosp);
      const link = await bed.exec(hosp, ['ip', '-j', 'link', 'show', hosp.wgInterface]);
      t.equal((JSON.parse(link.stdout) as { ifname: string }[])[0]?.ifname, hosp.wgInterface);
      t.ok(existsSync(`/var/run/wireguard/${hosp.wgInterface}.sock`), 'control socket present');
      t.same(
        (await bed.exec('controller', ['ip', 'link', 'show', hosp.wgInterface], { check: false })).code !== 0,
        true,
        'not visible in another namespace',
      );
      await deleteWireGuard(bed, dev);
      t.notOk(dev.process.isRunning, 'wireguard-go exited');
      t.not((await bed.exec(hosp, ['ip', 'link', 'show', hosp.wgInterface], { check: false })).code, 0, 'link gone');
      t.notOk(existsSync(`/var/run/wireguard/${hosp.wgInterface}.sock`), 'socket gone');
    });

    t.test('a hand-made WireGuard tunnel carries LAN-to-LAN traffic, sources kept', async (t) => {
      const tunnel = await manualTunnel(bed, hosp, shared);
      t.same(tunnel.a.prefixes, ['10.10.1.0/24', 'fd10:1::/64']);
      t.same(tunnel.b.prefixes, ['10.20.1.0/24', 'fd20:1::/64', '10.10.2.0/24']);
      const tcp = await bed.listen('srv', 'tcp', 443);
      const first = await bed.ping('ws', '10.20.1.10', { count: 3, intervalMs: 100, timeoutMs: 2000 });
      t.ok(first.received >= 2, `ping through the tunnel (${first.received}/3; the first may wait for the handshake)`);
      const handshakeMs = await waitForHandshake(bed, tunnel.a, tunnel.b.keys.publicKey);
      t.ok(handshakeMs >= 0);
      t.same(await bed.ping('ws', 'fd20:1::10', quick), { sent: 2, received: 2 }, 'IPv6 through the tunnel');
      t.equal(await bed.tcpProbe('ws', '10.20.1.10', 443), 'open');
      await tcp.waitForSource('10.10.1.10');
      t.same(tcp.sources(), ['10.10.1.10'], 'no SNAT: the server sees the workstation');
      t.same(await bed.ping('gp', '10.10.1.10', quick), { sent: 2, received: 2 }, "the shared box's second LAN too");
      await tunnel.close();
      t.same((await bed.ping('ws', '10.20.1.10', quick)).received, 0, 'cut again once the tunnel is gone');
      await tcp.close();
    });

    await t.test('destroy kills every process by PID, also daemonised ones, and removes every namespace', async (t) => {
      const tracked = bed.spawn('srv', ['sleep', '300']);
      // wireguard-go without -f daemonises: the testbed never learns that PID, only its namespace.
      await bed.exec(shared, ['wireguard-go', shared.wgInterface], {
        env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' },
      });
      const inBox = await bed.pidsIn(shared);
      t.ok(inBox.length >= 1, 'daemonised wireguard-go lives in the box namespace');
      const started = bed.processes.map((p) => p.pid);
      t.ok(started.includes(tracked.pid));
      const workDir = bed.workDir;
      await bed.destroy();
      await bed.destroy(); // idempotent
      t.same(namespacesWithPrefix(bed.prefix), [], 'no namespace with the prefix remains');
      t.same([...started, ...inBox].filter(isPidAlive), [], 'every PID is gone');
      t.notOk(existsSync(`/var/run/wireguard/${shared.wgInterface}.sock`), 'no stale WireGuard socket');
      t.notOk(existsSync(workDir), 'work directory removed');
      t.throws(() => bed.spawn('srv', ['true']), /destroyed/);
    });
  });

  t.test('attach() gives a handle on a running testbed built elsewhere', async (t) => {
    const desc = {
      boxes: [{ name: 'a', lans: [{ lan: 'l', address: '10.7.0.1/24' }] }],
      hosts: [{ name: 'h', lan: 'l', address: '10.7.0.7/24' }],
    };
    const bed = await Testbed.create(desc, { t });
    const other = Testbed.attach({ ...desc, prefix: bed.prefix });
    t.same(other.namespaces, bed.namespaces);
    t.equal(other.workDir, bed.workDir, 'one work directory (logs) per prefix');
    t.same(await other.ping('h', '10.7.0.1', { count: 1 }), { sent: 1, received: 1 });
    t.throws(() => Testbed.attach({ ...desc, prefix: 'xlnone0' }), /not running/);
    await bed.destroy();
    t.same(namespacesWithPrefix(bed.prefix), []);
  });

  const fixture = fileURLToPath(new URL('./fixtures/hold-testbed.ts', import.meta.url));
  for (const [mode, signal] of [
    ['wait', 'SIGINT'],
    ['wait', 'SIGTERM'],
    ['throw', undefined],
    ['release', undefined],
  ] as const) {
    t.test(
      `cleanup without destroy(): ${signal ?? (mode === 'throw' ? 'uncaught exception' : 'released, then destroyByPrefix')}`,
      async (t) => {
        const child = spawn(process.execPath, ['--import', 'tsx', fixture, mode], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (b: Buffer) => (out += b.toString()));
        child.stderr.on('data', (b: Buffer) => (err += b.toString()));
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        const deadline = Date.now() + 20_000;
        while (!out.includes('\n') && Date.now() < deadline && child.exitCode === null)
          await new Promise((r) => setTimeout(r, 20));
        const info = JSON.parse(out.split('\n')[0] || 'null') as {
          prefix: string;
          pid: number;
          workDir: string;
        } | null;
        if (!info) {
          child.kill('SIGKILL');
          t.fail(`fixture did not start: ${err}`);
          return;
        }
        t.ok(namespacesWithPrefix(info.prefix).length > 0, 'namespaces exist while it runs');
        t.ok(isPidAlive(info.pid));
        if (signal) child.kill(signal);
        await exited;
        if (mode === 'release') {
          t.ok(namespacesWithPrefix(info.prefix).length > 0, 'released: still there after its process exited');
          t.ok(isPidAlive(info.pid), 'released: its detached process still runs');
          const removed = await Testbed.destroyByPrefix(info.prefix);
          t.ok(removed.length > 0, 'destroyByPrefix found it');
        }
        t.same(namespacesWithPrefix(info.prefix), [], 'namespaces removed');
        t.notOk(isPidAlive(info.pid), 'its process is gone');
        t.notOk(existsSync(info.workDir), 'work directory removed');
      },
    );
  }
}
