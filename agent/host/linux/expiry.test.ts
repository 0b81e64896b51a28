// Rule windows on a real box: the firewall the agent renders and installs (through the Linux
// adapter) closes a live TCP stream at the rule's not-after and opens at its not-before, with no
// process of Crosslink running at that moment — no controller, no agent loop: the kernel's nft
// compares the time itself. Host A -- box -- host B; the box's interface towards B plays the
// WireGuard interface (the firewall judges by interface name only), so no tunnel is needed.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { create } from '@bufbuild/protobuf';
import { FlowRuleSchema, type FlowRule } from '../../../proto/gen/crosslink/v1/agent_pb.js';
import { renderFirewall } from '../firewall-render.js';
import { firewall, flow } from '../firewall.fixture.js';
import { LinuxFirewall } from './firewall.js';
import { LinuxConntrack } from './conntrack.js';
import { StaleFlows } from '../../reconcile/stale-flows.js';
import { assignRuleMarks, RULE_MARK_BASE, RULE_MARK_MASK } from '../firewall-names.js';
import { ProcessRunner } from './run.js';
import { isRoot, must, NetnsFixture } from './netns.fixture.js';

/** Prints the time (ms) of every chunk it receives, on every connection. */
const SERVER = `
import socket, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(64)
print("ready", flush=True)
def serve(c):
    while True:
        try:
            d = c.recv(4096)
        except OSError:
            return
        if not d: return
        print(int(time.time() * 1000), flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/** One connection, a byte every 50 ms for SECONDS seconds (sends into a cut flow just queue). */
const STREAM = `
import socket, sys, time
s = socket.create_connection(("10.2.0.2", 8080), timeout=3)
s.setblocking(False)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    try: s.send(b"x")
    except OSError: pass
    time.sleep(0.05)
`;

/** A new connection every 100 ms; prints the time (ms) of each one that succeeds. */
const ATTEMPTS = `
import socket, sys, time
end = time.time() + float(sys.argv[1])
while time.time() < end:
    try:
        socket.create_connection(("10.2.0.2", 8080), timeout=0.1).close()
        print(int(time.time() * 1000), flush=True)
    except OSError: pass
    time.sleep(0.1)
`;

function timed(r: FlowRule, notBeforeMs: number, notAfterMs: number): FlowRule {
  return create(FlowRuleSchema, { ...r, notBeforeUnixMs: BigInt(notBeforeMs), notAfterUnixMs: BigInt(notAfterMs) });
}

/** A whole second at least `ms` from now (nft compares whole seconds). */
const secondAfter = (ms: number): number => Math.ceil((Date.now() + ms) / 1000) * 1000;

function py(ns: string, script: string, args: string[]): { child: ChildProcess; lines: number[]; done: Promise<void> } {
  const child = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: number[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const p of parts) if (/^\d+$/.test(p)) lines.push(Number(p));
  });
  const done = new Promise<void>((r) => child.on('exit', () => r()));
  return { child, lines, done };
}

if (!isRoot()) {
  t.plan(0, 'needs root (network namespaces)');
} else {
  t.test('a rule window on a box: a live flow is cut at not-after, new flows start at not-before', async (t) => {
    const fx = new NetnsFixture();
    t.teardown(() => fx.cleanup());
    const box = fx.addNetns('X');
    const hostA = fx.addNetns('a');
    const hostB = fx.addNetns('b');
    must(['ip', 'link', 'add', 'lan0', 'netns', box, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostA]);
    must(['ip', 'link', 'add', 'xlw0', 'netns', box, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostB]);
    for (const [ns, dev, addr] of [
      [box, 'lan0', '10.1.0.1/24'],
      [hostA, 'eth0', '10.1.0.2/24'],
      [box, 'xlw0', '10.2.0.1/24'],
      [hostB, 'eth0', '10.2.0.2/24'],
    ] as const) {
      must(['ip', '-n', ns, 'addr', 'add', addr, 'dev', dev]);
      must(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
    must(['ip', '-n', hostA, 'route', 'add', 'default', 'via', '10.1.0.1']);
    must(['ip', '-n', hostB, 'route', 'add', 'default', 'via', '10.2.0.1']);
    must(['ip', 'netns', 'exec', box, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);

    const server = py(hostB, SERVER, []);
    fx.trackPid(server.child.pid!);
    await new Promise((r) => setTimeout(r, 300));
    const fw = new LinuxFirewall({ runner: new ProcessRunner(), netns: box, isWatching: false });
    const rule = flow('a-to-b', ['10.1.0.0/24'], ['10.2.0.0/24'], 'tcp', [8080]);
    const install = (r: FlowRule) => fw.replace(renderFirewall(firewall({ outbound: [r] }), { wgInterface: 'xlw0' }));

    await t.test('ends: a live stream stops within 1 s of not-after', async (t) => {
      const endMs = secondAfter(5_000);
      await install(timed(rule, 0, endMs));
      const before = server.lines.length;
      const stream = py(hostA, STREAM, [String((endMs - Date.now()) / 1000 + 3)]);
      fx.trackPid(stream.child.pid!);
      await stream.done;
      const got = server.lines.slice(before);
      const last = Math.max(...got);
      t.ok(got.length > 20, `the stream carried data (${got.length} chunks)`);
      t.ok(last >= endMs - 1_000, `it was live until shortly before the end (last chunk ${last - endMs} ms from it)`);
      t.ok(
        last < endMs + 1_000,
        `and cut within 1 s of it (last chunk at end ${last >= endMs ? '+' : ''}${last - endMs} ms)`,
      );
      const fresh = spawnSync('ip', ['netns', 'exec', hostA, 'nc', '-z', '-w', '1', '10.2.0.2', '8080']);
      t.not(fresh.status, 0, 'a new connection is refused after the end');
    });

    await t.test('starts: new connections pass from not-before on, not earlier', async (t) => {
      const startMs = secondAfter(5_000);
      await install(timed(rule, startMs, 0));
      const attempts = py(hostA, ATTEMPTS, [String((startMs - Date.now()) / 1000 + 2)]);
      fx.trackPid(attempts.child.pid!);
      const t0 = Date.now();
      await attempts.done;
      const first = Math.min(...attempts.lines);
      t.ok(startMs - t0 > 3_000, 'attempts ran for seconds before the start');
      t.ok(first >= startMs, `none got through before not-before (first ${first - startMs} ms after it)`);
      t.ok(first < startMs + 1_000, `the first got through within 1 s of it (${first - startMs} ms)`);
    });

    // Not only expiry: any rule that goes. The reconciler forgets the conntrack entries of marks no
    // longer in force after each firewall change (agent/reconcile/stale-flows.ts); without that,
    // `ct state established` would carry the removed rule's live flows on ("fail ajar").
    await t.test('a removed rule: its live stream stops once its flows are forgotten', async (t) => {
      const conntrack = new LinuxConntrack({ runner: new ProcessRunner(), netns: box });
      const stale = new StaleFlows(conntrack);
      const other = flow('a-to-b-ssh', ['10.1.0.0/24'], ['10.2.0.0/24'], 'tcp', [22]);
      const marksOf = (rules: FlowRule[]) =>
        new Set(assignRuleMarks({ outbound: rules.map((r) => r.rule), inbound: [], local: [] }).map((m) => m.mark));
      const apply = async (rules: FlowRule[]) => {
        await fw.replace(renderFirewall(firewall({ outbound: rules }), { wgInterface: 'xlw0' }));
        await stale.afterFirewall(new Map(), marksOf(rules));
      };
      await apply([rule]);
      const before = server.lines.length;
      const stream = py(hostA, STREAM, ['4']);
      fx.trackPid(stream.child.pid!);
      await new Promise((r) => setTimeout(r, 1000));
      const [mark] = marksOf([rule]);
      t.ok(
        (await conntrack.listMarks(RULE_MARK_BASE, RULE_MARK_MASK)).includes(mark!),
        "the flow carries its rule's mark",
      );
      // A change that keeps the rule: the flow runs on.
      await apply([rule, other]);
      await new Promise((r) => setTimeout(r, 1000));
      const keptUntil = Math.max(...server.lines.slice(before));
      t.ok(Date.now() - keptUntil < 300, 'a change that keeps the rule leaves its flow alone');
      // The rule goes: the flow is forgotten, its next packet is new to conntrack and no rule admits it.
      const removedAt = Date.now();
      await apply([other]);
      t.notOk((await conntrack.listMarks(RULE_MARK_BASE, RULE_MARK_MASK)).includes(mark!), 'its entry is gone');
      await stream.done;
      const last = Math.max(...server.lines.slice(before));
      t.ok(last < removedAt + 500, `the stream stopped (last chunk ${last - removedAt} ms after the removal)`);
    });
  });
}
