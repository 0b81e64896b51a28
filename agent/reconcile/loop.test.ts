import t, { type Test } from 'tap';
import fc from 'fast-check';
import { silentLogger } from '../../lib/logger.js';
import { HostCommandError } from '../../lib/errors.js';
import type { Host } from '../host/ports.js';
import { Reconciler, type Timers } from './loop.js';
import { plan } from './plan.js';
import { teardown } from './teardown.js';
import type { FakeHost } from '../host/fake-host.js';
import { NAMED, SETTINGS, config, fakeHost, stubRenderFirewall } from './reconcile.fixture.js';
import type { DesiredState } from './desired.js';

class ManualTimers implements Timers {
  pending = new Map<number, { fn: () => void; ms: number }>();
  private next = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { fn, ms });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.pending.delete(h as number);
  }
  /** The delay of the one scheduled timer. */
  get delayMs(): number | undefined {
    return [...this.pending.values()][0]?.ms;
  }
  fire(): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.fn();
  }
}

function setup(host: Host = fakeHost()) {
  let now = 1_000_000;
  const clock = { nowMs: () => (now += 5) };
  const timers = new ManualTimers();
  const r = new Reconciler({
    host,
    clock,
    log: silentLogger(),
    settings: SETTINGS,
    renderFirewall: stubRenderFirewall,
    timers,
    random: () => 0.5,
  });
  return { r, timers, host };
}

async function stepsLeft(r: Reconciler): Promise<number> {
  const d = r.desiredState!;
  return plan(d, await r.observe(d)).length;
}

/** The host is exactly what `d` says (checked field by field, not through plan()). */
function assertHostIs(t: Test, host: FakeHost, d: DesiredState) {
  const dev = host.wgDevice(d.interfaceName);
  t.ok(dev, 'device exists');
  t.same(
    dev!.peers.map((p) => p.publicKey).sort(),
    d.wireguard.peers.map((p) => p.publicKey),
    'peers',
  );
  t.same(
    host
      .ownRoutes()
      .map((r) => r.prefix)
      .sort(),
    d.routes.map((r) => r.prefix),
    'routes',
  );
  t.equal(host.firewallText(), d.firewall.ruleset, 'firewall');
  t.same(host.linkState(d.interfaceName).addresses, d.addresses, 'addresses');
  t.equal(host.sysctlValue('net.ipv4.ip_forward'), '1', 'forwarding');
}

t.test('idempotency: apply, observe, plan -> no steps, and no writes on the second run', async (t) => {
  for (const [name, cfg] of Object.entries(NAMED)) {
    const { r, host } = setup();
    const fake = host as FakeHost;
    t.same(r.setDesired(cfg), { isChanged: true }, `${name}: accepted`);
    const first = await r.reconcile();
    t.same(first!.errors, [], `${name}: applied without errors`);
    t.ok(first!.steps.length > 0);
    t.equal(await stepsLeft(r), 0, `${name}: nothing left to do`);
    const writes = fake.writes.length;
    const second = await r.reconcile();
    t.same(second!.steps, [], `${name}: second run plans nothing`);
    t.equal(fake.writes.length, writes, `${name}: second run writes nothing`);
    t.equal(r.status.generationApplied, cfg.generation);
    assertHostIs(t, fake, r.desiredState!);
  }
});

t.test('every transition between the named states, in random orders, ends equal to the desired state', async (t) => {
  const names = [...Object.keys(NAMED), 'tornDown'];
  let transitions = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.constantFrom(...names), { minLength: 2, maxLength: 12 }), async (seq) => {
      const host = fakeHost();
      const { r } = setup(host);
      let gen = 100;
      for (const name of seq) {
        transitions++;
        if (name === 'tornDown') {
          t.same(await teardown(host, SETTINGS.interfaceName), []);
          r.forgetWrites();
          if (host.wgInterfaces().length !== 0 || host.ownRoutes().length !== 0 || host.firewallText() !== null)
            return false;
          continue;
        }
        r.setDesired({ ...NAMED[name]!, generation: BigInt(++gen) });
        const out = await r.reconcile();
        if (out!.errors.length !== 0) return false;
        if ((await stepsLeft(r)) !== 0) return false;
        const w = host.writes.length;
        await r.reconcile();
        if (host.writes.length !== w) return false;
        const d = r.desiredState!;
        if (host.firewallText() !== d.firewall.ruleset) return false;
        const peers = host
          .wgDevice(SETTINGS.interfaceName)!
          .peers.map((p) => p.publicKey)
          .sort();
        if (JSON.stringify(peers) !== JSON.stringify(d.wireguard.peers.map((p) => p.publicKey))) return false;
        if (
          JSON.stringify(
            host
              .ownRoutes()
              .map((x) => x.prefix)
              .sort(),
          ) !== JSON.stringify(d.routes.map((x) => x.prefix))
        )
          return false;
      }
      return true;
    }),
    { seed: 4242, numRuns: 60 },
  );
  // Plus every ordered pair once, deterministically.
  for (const a of names) {
    for (const b of names) {
      if (a === 'tornDown' && b === 'tornDown') continue;
      const host = fakeHost();
      const { r } = setup(host);
      for (const [i, n] of [a, b].entries()) {
        if (n === 'tornDown') {
          await teardown(host, SETTINGS.interfaceName);
          continue;
        }
        r.setDesired({ ...NAMED[n]!, generation: BigInt(i + 1) });
        t.same((await r.reconcile())!.errors, [], `${a} -> ${b}: no errors`);
      }
      if (b !== 'tornDown') {
        t.equal(await stepsLeft(r), 0, `${a} -> ${b}: nothing left`);
        assertHostIs(t, host, r.desiredState!);
      } else {
        t.equal(
          host.wgInterfaces().length + host.ownRoutes().length + (host.firewallText() ? 1 : 0),
          0,
          `${a} -> torn down: empty`,
        );
      }
    }
  }
  t.ok(transitions > 100);
});

t.test('partial failure: the others are applied, the failure is reported exactly, a retry succeeds', async (t) => {
  const host = fakeHost();
  const { r, timers } = setup(host);
  host.failAlways('routes.apply', {
    argv: ['ip', '-batch', '-'],
    exitCode: 2,
    stderr: 'RTNETLINK answers: Operation not permitted\n',
  });
  r.start();
  r.setDesired(NAMED.peersRoutesFirewall!);
  const out = await r.reconcile();
  t.same(out!.errors, [
    {
      step: 'routes',
      command: 'ip -batch -',
      exitCode: 2,
      stderr: 'RTNETLINK answers: Operation not permitted\n',
      isTerminal: false,
      message: 'ip -batch - exited 2: RTNETLINK answers: Operation not permitted',
    },
  ]);
  t.equal(host.wgDevice(SETTINGS.interfaceName)!.peers.length, 2, 'peers applied anyway');
  t.equal(host.firewallText(), r.desiredState!.firewall.ruleset, 'firewall applied anyway');
  t.equal(host.sysctlValue('net.ipv4.ip_forward'), '1', 'sysctl applied anyway (it comes after the failed step)');
  t.equal(r.status.generationApplied, 0n, 'not applied completely');
  t.equal(r.status.generationDesired, 4n);
  t.equal(r.status.consecutiveFailures, 1);
  t.equal(r.status.errors.length, 1);
  t.equal(timers.delayMs, 750, 'retry scheduled with backoff (1 s, half jitter), not at the resync interval');

  // Still failing: the backoff grows.
  timers.fire();
  await r.reconcile();
  t.equal(r.status.consecutiveFailures, 2, 'the retry and our call were one run');
  t.ok(timers.delayMs! > 750, 'backoff grows');

  host.clearFailure();
  timers.fire();
  const ok = await r.reconcile();
  t.same(ok!.errors, []);
  t.same(r.status.errors, []);
  t.equal(r.status.generationApplied, 4n);
  t.equal(r.status.consecutiveFailures, 0);
  t.equal(timers.delayMs, 10_000, 'back to the resync interval');
  t.equal(await stepsLeft(r), 0);
  await r.stop();
  t.equal(timers.pending.size, 0, 'stop leaves no timer');
});

t.test('a failed observation is reported and retried', async (t) => {
  const host = fakeHost();
  host.routes.observe = async () => {
    throw new HostCommandError(['ip', '-json', 'route', 'show', 'proto', '147'], 1, 'boom\n');
  };
  const { r } = setup(host);
  r.setDesired(NAMED.onePeer!);
  const out = await r.reconcile();
  t.match(out!.errors, [{ step: 'observe', command: 'ip -json route show proto 147', exitCode: 1 }]);
  t.same(out!.steps, [], 'nothing applied blind');
});

t.test('drift behind its back is put right on the next resync', async (t) => {
  const host = fakeHost();
  const { r, timers } = setup(host);
  r.setDesired(NAMED.peersRoutesFirewall!);
  r.start();
  await r.reconcile();
  t.equal(timers.delayMs, 10_000, 'resync scheduled');
  const dev = host.wgDevice(SETTINGS.interfaceName)!;
  host.deletePeerByHand(SETTINGS.interfaceName, dev.peers[dev.peers.length - 1]!.publicKey);
  host.deleteRouteByHand(host.ownRoutes()[host.ownRoutes().length - 1]!.prefix);
  host.loadFirewallByHand('table inet crosslink { } # edited by hand');
  host.setSysctlByHand('net.ipv4.ip_forward', '0');
  host.setLinkDownByHand(SETTINGS.interfaceName);
  host.resetCounts();
  timers.fire();
  const out = await r.reconcile();
  t.same(
    out!.steps.map((s) => s.kind),
    ['link.up', 'firewall.replace', 'wireguard.sync', 'routes', 'sysctl.set'],
  );
  t.match(out!.steps[1], { reason: 'drift' });
  t.equal(await stepsLeft(r), 0);
  assertHostIs(t, host, r.desiredState!);

  // The table deleted outright, and the interface deleted outright.
  host.deleteFirewallTable();
  await host.wireguard.remove(SETTINGS.interfaceName);
  await r.reconcile('resync');
  t.equal(await stepsLeft(r), 0);
  assertHostIs(t, host, r.desiredState!);
  await r.stop();
});

t.test('an invalid config is terminal: reported, not applied, not retried; the previous config stays', async (t) => {
  const host = fakeHost();
  const { r, timers } = setup(host);
  r.start();
  r.setDesired(NAMED.onePeer!);
  await r.reconcile();
  const writes = host.writes.length;
  const res = r.setDesired(config(9, { routes: ['10.0.0.0/99'] }));
  t.equal(res.isChanged, false);
  t.equal(res.error?.code, 'config_invalid');
  t.equal(r.status.generationSeen, 9n);
  t.equal(r.status.generationApplied, 2n, 'still enforcing the previous one');
  t.match(r.status.errors, [{ step: 'config', isTerminal: true, stderr: /routes\[0\]/ }]);
  await r.reconcile();
  t.equal(host.writes.length, writes, 'no writes for the invalid config');
  t.equal(timers.delayMs, 10_000, 'no backoff retry; only the resync of the old config');
  t.match(r.status.errors, [{ isTerminal: true }], 'terminal error stays visible');
  r.setDesired(NAMED.threePeers!);
  await r.reconcile();
  t.same(r.status.errors, [], 'a valid config clears it');
  t.equal(r.status.generationApplied, 3n);
  await r.stop();
});

t.test('same content under a new generation changes nothing on the host', async (t) => {
  const host = fakeHost();
  const { r } = setup(host);
  r.setDesired(NAMED.onePeer!);
  await r.reconcile();
  const writes = host.writes.length;
  t.same(r.setDesired({ ...NAMED.onePeer!, generation: 17n }), { isChanged: false });
  t.equal(r.status.generationApplied, 17n);
  await r.reconcile();
  t.equal(host.writes.length, writes);
});

t.test('concurrent kicks coalesce into one queued run', async (t) => {
  const host = fakeHost();
  const { r } = setup(host);
  r.setDesired(NAMED.onePeer!);
  const a = r.reconcile('a');
  const b = r.reconcile('b');
  const c = r.reconcile('c');
  t.equal(b, c, 'queued callers share a run');
  await Promise.all([a, b, c]);
  t.equal(r.status.runsTotal, 1, 'the first had not started yet, so all three are one run');
  r.kick();
  r.kick();
  await r.reconcile();
  t.ok(r.status.runsTotal <= 3);
});

t.test('no desired config yet: nothing happens', async (t) => {
  const host = fakeHost();
  const { r } = setup(host);
  t.equal(await r.reconcile(), null);
  t.same(host.writes, []);
});

t.test(
  'peers and routes are prepared while the firewall commits, and their steps get the very objects prepared',
  async (t) => {
    const host = fakeHost();
    const log: string[] = [];
    const prepared = new Set<object>();
    const fwReplace = host.firewall.replace.bind(host.firewall);
    host.firewall.replace = async (ruleset: string, opts?: { whileCommitting?: () => void }) => {
      log.push('commit started');
      opts?.whileCommitting?.();
      opts?.whileCommitting?.(); // a second call must not prepare again
      log.push('commit done');
      return fwReplace(ruleset);
    };
    const wg = host.wireguard;
    wg.prepare = (_ifname, device) => {
      log.push('prepare peers');
      prepared.add(device);
    };
    const sync = wg.sync.bind(wg);
    wg.sync = async (ifname, device) => {
      log.push(prepared.has(device) ? 'sync prepared' : 'sync unprepared');
      return sync(ifname, device);
    };
    const routes = host.routes;
    routes.prepare = (changes) => {
      log.push('prepare routes');
      prepared.add(changes);
    };
    const apply = routes.apply.bind(routes);
    routes.apply = async (changes) => {
      log.push(prepared.has(changes) ? 'routes prepared' : 'routes unprepared');
      return apply(changes);
    };
    const { r } = setup(host);
    const base = NAMED.peersRoutesFirewall!;
    r.setDesired(base);
    const out = await r.reconcile();
    t.same(out!.errors, []);
    t.same(log, [
      'commit started',
      'prepare peers',
      'prepare routes',
      'commit done',
      'sync prepared',
      'routes prepared',
    ]);

    // No firewall step (the firewall is in place): prepared right before the peers and routes.
    log.length = 0;
    r.setDesired(config(99, { peers: base.peers.slice(1), routes: base.routes.slice(1), firewall: base.firewall }));
    const second = await r.reconcile();
    t.same(second!.errors, []);
    t.notOk(
      second!.steps.some((s) => s.kind === 'firewall.replace'),
      'no firewall step',
    );
    t.same(
      log.filter((l) => !l.startsWith('commit')),
      ['prepare peers', 'prepare routes', 'sync prepared', 'routes prepared'],
    );
  },
);

t.test('a prepare that throws is left to its step, which does the work itself', async (t) => {
  const host = fakeHost();
  host.wireguard.prepare = () => {
    throw new Error('prepare broke');
  };
  host.routes.prepare = () => {
    throw new Error('prepare broke');
  };
  const { r } = setup(host);
  r.setDesired(NAMED.peersRoutesFirewall!);
  const out = await r.reconcile();
  t.same(out!.errors, [], 'the steps ran and succeeded');
  assertHostIs(t, host, r.desiredState!);
});

t.test(
  'a new config: the host is read while its desired state is computed, and that reading serves the run',
  async (t) => {
    const host = fakeHost();
    const log: string[] = [];
    const wgObserve = host.wireguard.observe.bind(host.wireguard);
    host.wireguard.observe = async (ifname: string) => {
      log.push('read');
      return wgObserve(ifname);
    };
    let now = 1_000_000;
    const r = new Reconciler({
      host,
      clock: { nowMs: () => (now += 5) },
      log: silentLogger(),
      settings: SETTINGS,
      timers: new ManualTimers(),
      random: () => 0.5,
      renderFirewall: (fw, o) => {
        log.push('render');
        return stubRenderFirewall(fw, o);
      },
    });
    r.start();
    await r.reconcile(); // no config yet: nothing read
    t.same(log, []);
    r.setDesired(NAMED.peersRoutesFirewall!);
    const out = await r.reconcile();
    t.same(out!.errors, []);
    t.same(log, ['read', 'render'], 'one reading, started before the desired state was computed');
    t.equal(await stepsLeft(r), 0);

    // The same content again: no reading, no run.
    log.length = 0;
    t.same(
      r.setDesired(config(5, { ...NAMED.peersRoutesFirewall!, contentHash: NAMED.peersRoutesFirewall!.contentHash })),
      { isChanged: false },
    );
    t.same(log, [], 'nothing read for an unchanged config');
    await r.stop();
  },
);

t.test(
  'a reading started ahead is not used by a later run, and none is started while a run is in progress',
  async (t) => {
    const host = fakeHost();
    let reads = 0;
    const wgObserve = host.wireguard.observe.bind(host.wireguard);
    host.wireguard.observe = async (ifname: string) => {
      reads++;
      return wgObserve(ifname);
    };
    let release: () => void = () => undefined;
    const fwReplace = host.firewall.replace.bind(host.firewall);
    let isBlocking = true;
    host.firewall.replace = async (ruleset: string) => {
      if (isBlocking) await new Promise<void>((res) => (release = res));
      return fwReplace(ruleset);
    };
    const { r } = setup(host);
    r.start();
    r.setDesired(NAMED.peersRoutesFirewall!);
    const first = r.reconcile();
    await new Promise((res) => setTimeout(res, 20)); // the run is now blocked in the firewall step
    t.equal(reads, 1);
    isBlocking = false;
    // A config during the run: nothing read now (it would predate the run's writes).
    r.setDesired(
      config(7, {
        peers: NAMED.peersRoutesFirewall!.peers.slice(1),
        routes: NAMED.peersRoutesFirewall!.routes,
        firewall: NAMED.peersRoutesFirewall!.firewall,
      }),
    );
    t.equal(reads, 1, 'no reading while a run is in progress');
    release();
    await first;
    const second = await r.reconcile();
    t.equal(reads, 2, 'the next run read the host itself');
    t.same(second!.errors, []);
    t.equal(await stepsLeft(r), 0);
    await r.stop();
  },
);
