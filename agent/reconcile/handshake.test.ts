// HandshakeStarter with the real Reconciler and the FakeHost (which passes the host contract).
import t from 'tap';
import { create } from '@bufbuild/protobuf';
import { PeerSchema } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { silentLogger } from '../../lib/logger.js';
import { FakeHost } from '../host/fake-host.js';
import { publicKeyOf } from '../state.js';
import { HandshakeStarter } from './handshake.js';
import { Reconciler, type Timers } from './loop.js';
import { renderFirewall } from '../host/firewall-render.js';
import { config, keyOf, SETTINGS } from './reconcile.fixture.js';

const PRIVATE_KEY = Buffer.alloc(32, 0x48).toString('base64');
const OURS = publicKeyOf(PRIVATE_KEY);
const HIGH = keyOf(0xc0); // above ours: this end restarts it
const LOW = keyOf(0x10); // below ours: the other end does
const OLD = keyOf(0x90);

const peer = (key: string, name: string, allowed: string) =>
  create(PeerSchema, {
    name,
    publicKey: key,
    endpoint: '192.0.2.9:51820',
    persistentKeepaliveSeconds: 25,
    allowedIps: [allowed],
    overlayIp: allowed.split('/')[0]!,
  });

function setup() {
  const host = new FakeHost({ readPrivateKey: async () => `${PRIVATE_KEY}\n` });
  const pending: Array<() => void> = [];
  const timers: Timers = {
    setTimeout: (fn) => {
      pending.push(fn);
      return pending.length;
    },
    clearTimeout: () => undefined,
  };
  const r = new Reconciler({
    host,
    clock: { nowMs: () => 0 },
    log: silentLogger(),
    settings: { ...SETTINGS, publicKey: OURS },
    renderFirewall,
    random: () => 0.5,
  });
  const starter = new HandshakeStarter({
    reconciler: r,
    wireguard: host.wireguard,
    timers,
    log: silentLogger(),
    delayMs: 500,
  });
  const fire = async () => {
    for (const fn of pending.splice(0)) fn();
    await r.exclusive(async () => undefined); // the restart ran
  };
  return { host, r, starter, pending, fire };
}

t.test('the fixture keys', async (t) => {
  t.ok(LOW < OURS && OURS < HIGH, 'the fixture keys lie either side of ours');
});

t.test("a box's first apply is left alone: its peers were not added to a running link", async (t) => {
  const { r, pending } = setup();
  r.setDesired(config(1, { peers: [peer(HIGH, 'high', '100.64.0.9/32')] }));
  await r.reconcile();
  t.equal(pending.length, 0);
});

t.test('new peers without a handshake: restarted once, by the end with the lower key', async (t) => {
  const { host, r, starter, pending, fire } = setup();
  r.setDesired(config(1, { peers: [peer(OLD, 'old', '100.64.0.8/32')] }));
  await r.reconcile();
  r.setDesired(
    config(2, {
      peers: [
        peer(OLD, 'old', '100.64.0.8/32'),
        peer(HIGH, 'high', '100.64.0.9/32'),
        peer(LOW, 'low', '100.64.0.10/32'),
      ],
    }),
  );
  t.same((await r.reconcile())!.errors, []);
  t.equal(pending.length, 1, 'a look is scheduled after the apply that added peers');
  const syncsBefore = host.calls.get('wireguard.sync') ?? 0;
  const before = await host.wireguard.observe(SETTINGS.interfaceName);
  await fire();
  t.equal(starter.restarts, 1, 'only the peer above our key');
  t.equal((host.calls.get('wireguard.sync') ?? 0) - syncsBefore, 2, 'removed, then added again');
  const after = await host.wireguard.observe(SETTINGS.interfaceName);
  const strip = (d: typeof after) =>
    d!.peers.map((p) => ({
      key: p.publicKey,
      endpoint: p.endpoint,
      allowedIps: p.allowedIps,
      keepalive: p.persistentKeepaliveSeconds,
    }));
  t.same(strip(after), strip(before), 'the device ends as configured');
  t.same((await r.reconcile())!.steps, [], 'nothing for the reconciler to put right');
  t.equal(pending.length, 0, 'once per new peer: no further look');
});

t.test('a new peer that shook hands in time, or left the config, is not touched', async (t) => {
  const { host, r, starter, fire } = setup();
  r.setDesired(config(1, { peers: [peer(OLD, 'old', '100.64.0.8/32')] }));
  await r.reconcile();
  r.setDesired(config(2, { peers: [peer(OLD, 'old', '100.64.0.8/32'), peer(HIGH, 'high', '100.64.0.9/32')] }));
  await r.reconcile();
  host.setPeerStats(SETTINGS.interfaceName, HIGH, { latestHandshakeUnix: 1_700_000_000 });
  const syncs = host.calls.get('wireguard.sync') ?? 0;
  await fire();
  t.equal(starter.restarts, 0, 'it has a handshake');
  t.equal(host.calls.get('wireguard.sync') ?? 0, syncs, 'no write');

  r.setDesired(
    config(3, {
      peers: [
        peer(OLD, 'old', '100.64.0.8/32'),
        peer(HIGH, 'high', '100.64.0.9/32'),
        peer(keyOf(0xf0), 'gone', '100.64.0.11/32'),
      ],
    }),
  );
  await r.reconcile();
  r.setDesired(config(4, { peers: [peer(OLD, 'old', '100.64.0.8/32'), peer(HIGH, 'high', '100.64.0.9/32')] }));
  await r.reconcile();
  await fire();
  t.equal(starter.restarts, 0, 'a peer removed again before the look is not added back');
  t.same((await r.reconcile())!.steps, []);
});
