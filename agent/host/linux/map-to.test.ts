// `map-to` with real traffic: two sites numbered alike (10.1.1.0/24), each mapped (10.201.1.0/24,
// 10.202.1.0/24), and a hub site that reaches a host at each by its mapped address. Each box runs
// what the controller compiles for it (peers' allowed IPs, routes, firewall with the translation)
// on wireguard-go, through the Linux adapters. The hub meets the sites over two veth underlays.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePolicy } from '../../../controller/policy/compile.js';
import { syntheticInventory } from '../../../controller/policy/check.js';
import { parsePolicy } from '../../../controller/policy/validate.js';
import type { AgentName } from '../../../controller/policy/types.js';
import { FlowTracker, parseConntrackEvent } from '../../flows/conntrack-events.js';
import { assignRuleMarks } from '../firewall-names.js';
import { renderFirewall } from '../firewall-render.js';
import { generateWgPrivateKey, wgPublicKey } from '../wg-key.js';
import { createLinuxHost } from './host.js';
import { isRoot, must, NetnsFixture } from './netns.fixture.js';

const POLICY = `version: 1
zones:
  n3: { description: NHS }
agents:
  gp: { zones: [n3] }
  council: { zones: [n3] }
  hub: { zones: [n3] }
subnets:
  gp-lan: { cidr: 10.1.1.0/24, map-to: 10.201.1.0/24, zone: n3, via: gp }
  council-lan: { cidr: 10.1.1.0/24, map-to: 10.202.1.0/24, zone: n3, via: council }
  hub-lan: { cidr: 10.9.0.0/24, zone: n3, via: hub }
rules:
  - { name: hub-to-sites, from: hub-lan, to: [gp-lan, council-lan], ports: tcp/8080 }
  - { name: gp-to-hub, from: gp-lan, to: hub-lan, ports: tcp/8080 }
`;

// Answers each connection with its own site's name and the peer address it saw, then closes.
const SERVER = `
import socket, sys, threading
name = sys.argv[1]
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, peer = s.accept(); c.sendall(("%s %s\\n" % (name, peer[0])).encode()); c.close()
for p in sys.argv[2:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
`;

/** What the server at host:port answers from `ns`; undefined when no connection is made. */
function ask(ns: string, host: string, port: number): string | undefined {
  const py = `import socket
s = socket.create_connection(("${host}", ${port}), timeout=2)
print(s.recv(100).decode().strip())`;
  const r = spawnSync('ip', ['netns', 'exec', ns, 'python3', '-c', py], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

if (!isRoot()) {
  t.plan(0, 'needs root (network namespaces)');
} else {
  t.test('two sites with the same 10.1.1.0/24, each mapped, reached from a third by mapped address', async (t) => {
    const parsed = parsePolicy(POLICY);
    t.same(parsed.errors, undefined, 'the policy is valid');
    const { configs } = compilePolicy(parsed.policy!, syntheticInventory(parsed.policy!));
    const fx = new NetnsFixture();
    t.teardown(() => fx.cleanup());
    const dir = mkdtempSync(join(tmpdir(), 'xlh-mapto-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));

    const names = ['hub', 'gp', 'council'] as const;
    const box = Object.fromEntries(names.map((n) => [n, fx.addNetns(n[0]!.toUpperCase())])) as Record<string, string>;
    const host = Object.fromEntries(names.map((n) => [n, fx.addNetns(n[0])])) as Record<string, string>;
    const wg = Object.fromEntries(names.map((n) => [n, fx.ifname(n[0])])) as Record<string, string>;
    // Underlays: hub-gp on 192.168.81/24, hub-council on 192.168.82/24. LANs: the sites' alike.
    const underlay: Record<string, string> = { gp: '192.168.81.2', council: '192.168.82.2' };
    const hubSide: Record<string, string> = { gp: '192.168.81.1', council: '192.168.82.1' };
    must(['ip', 'link', 'add', 'ug', 'netns', box.hub!, 'type', 'veth', 'peer', 'name', 'u0', 'netns', box.gp!]);
    must(['ip', 'link', 'add', 'uc', 'netns', box.hub!, 'type', 'veth', 'peer', 'name', 'u0', 'netns', box.council!]);
    const lan: Record<string, [string, string]> = {
      hub: ['10.9.0.1', '10.9.0.2'],
      gp: ['10.1.1.1', '10.1.1.10'],
      council: ['10.1.1.1', '10.1.1.10'],
    };
    const addrs: Array<[string, string, string]> = [
      [box.hub!, 'ug', '192.168.81.1/24'],
      [box.gp!, 'u0', '192.168.81.2/24'],
      [box.hub!, 'uc', '192.168.82.1/24'],
      [box.council!, 'u0', '192.168.82.2/24'],
    ];
    for (const n of names) {
      must(['ip', 'link', 'add', 'lan0', 'netns', box[n]!, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host[n]!]);
      addrs.push([box[n]!, 'lan0', `${lan[n]![0]}/24`], [host[n]!, 'eth0', `${lan[n]![1]}/24`]);
    }
    for (const [ns, dev, addr] of addrs) {
      must(['ip', '-n', ns, 'addr', 'add', addr, 'dev', dev]);
      must(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
    for (const n of names) must(['ip', '-n', host[n]!, 'route', 'add', 'default', 'via', lan[n]![0]]);

    const keys = Object.fromEntries(names.map((n) => [n, generateWgPrivateKey()])) as Record<string, string>;
    for (const n of names) {
      const cfg = configs.get(n as AgentName)!;
      const h = createLinuxHost({ netns: box[n]! });
      t.teardown(() => h.close());
      writeFileSync(join(dir, `${n}.key`), keys[n]!, { mode: 0o600 });
      await h.wireguard.create(wg[n]!, 'userspace');
      await h.wireguard.sync(wg[n]!, {
        privateKeyFile: join(dir, `${n}.key`),
        listenPort: 51820,
        peers: cfg.peers.map((p) => ({
          publicKey: wgPublicKey(keys[p.name]!),
          // The sites peer with the hub only (no rule joins them).
          endpoint: `${n === 'hub' ? underlay[p.name] : hubSide[n]}:51820`,
          allowedIps: p.allowedIps,
          persistentKeepaliveSeconds: 0,
        })),
      });
      await h.links.setUp(wg[n]!, 1420);
      await h.links.addAddress(wg[n]!, cfg.overlayAddress);
      await h.routes.apply({ add: cfg.routes.map((prefix) => ({ prefix, dev: wg[n]! })), del: [] });
      await h.sysctl.set('net.ipv4.ip_forward', '1');
      await h.firewall.replace(renderFirewall(cfg.firewall, { wgInterface: wg[n]! }));
    }

    for (const n of names) {
      const p = spawn('ip', ['netns', 'exec', host[n]!, 'python3', '-c', SERVER, n, '8080', '22'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      fx.trackPid(p.pid!);
      await new Promise<void>((resolve, reject) => {
        p.stdout.once('data', () => resolve());
        p.once('exit', (c) => reject(new Error(`server exited ${c}`)));
      });
    }

    // The hub reaches each site by its mapped address; the reply comes back from the right site,
    // which saw the hub's real (unmapped) address.
    t.equal(ask(host.hub!, '10.201.1.10', 8080), 'gp 10.9.0.2', 'gp answers at 10.201.1.10');
    t.equal(ask(host.hub!, '10.202.1.10', 8080), 'council 10.9.0.2', 'council answers at 10.202.1.10');
    // A denied port stays shut at both.
    t.equal(ask(host.hub!, '10.201.1.10', 22), undefined, 'gp tcp/22 denied');
    t.equal(ask(host.hub!, '10.202.1.10', 22), undefined, 'council tcp/22 denied');
    // The real address means nothing in the overlay.
    t.equal(ask(host.hub!, '10.1.1.10', 8080), undefined, 'the real address is not routed');
    // Outbound from a mapped site: the hub sees the mapped source; council may not start flows.
    t.equal(ask(host.gp!, '10.9.0.2', 8080), 'hub 10.201.1.10', 'gp leaves as 10.201.1.10');
    t.equal(ask(host.council!, '10.9.0.2', 8080), undefined, 'council -> hub denied');
    // The gp box's flow records: the mapped address, the real one beside it. Its conntrack table
    // read as the flow collector reads its events (same tuple layout, as if each entry ended now).
    ask(host.hub!, '10.201.1.10', 8080);
    const fw = configs.get('gp' as AgentName)!.firewall!;
    const marks = new Map(
      assignRuleMarks({
        outbound: fw.outbound.map((r) => r.rule),
        inbound: fw.inbound.map((r) => r.rule),
        local: fw.local.map((r) => r.rule),
      }).map((m) => [m.mark, m]),
    );
    const tracker = new FlowTracker({ box: 'gp', marks: () => marks });
    const records = must([
      'ip',
      'netns',
      'exec',
      box.gp!,
      'conntrack',
      '-L',
      '-o',
      'id',
      '-p',
      'tcp',
      '--dport',
      '8080',
    ])
      .split('\n')
      .map((l) => parseConntrackEvent(`[1.0]\t[DESTROY] ${l}`))
      .flatMap((ev) => (ev ? [tracker.feed(ev)] : []));
    t.ok(
      records.some(
        (r) => r?.direction === 'inbound' && r.dstAddress === '10.201.1.10' && r.dstRealAddress === '10.1.1.10',
      ),
      'inbound record: mapped destination, real beside it',
    );
    t.ok(
      records.some(
        (r) => r?.direction === 'outbound' && r.srcAddress === '10.201.1.10' && r.srcRealAddress === '10.1.1.10',
      ),
      'outbound record: mapped source, real beside it',
    );
  });
}
