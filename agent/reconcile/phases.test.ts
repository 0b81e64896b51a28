// stepPhases: which steps may run at the same time, and the orderings that must hold.
import t from 'tap';
import { stepPhases } from './phases.js';
import type { Step } from './plan.js';

const device = { privateKeyFile: '/k', listenPort: 51820, peers: [] };
const fresh: Step[] = [
  { kind: 'wireguard.create', ifname: 'xl0', mode: 'userspace' },
  { kind: 'link.up', ifname: 'xl0', mtu: 1420 },
  { kind: 'address.add', ifname: 'xl0', cidr: '100.64.0.1/16' },
  { kind: 'firewall.replace', ruleset: 'table inet crosslink {}', hash: 'h', reason: 'missing' },
  { kind: 'wireguard.sync', ifname: 'xl0', device },
  { kind: 'routes', add: [{ prefix: '10.2.0.0/24', dev: 'xl0' }], del: [] },
  { kind: 'sysctl.set', key: 'net.ipv4.ip_forward', value: '1' },
  { kind: 'gateway.add', ifname: 'lan0', cidr: '10.1.0.1/24' },
];

t.test(
  'a fresh box: interface and firewall together, then peers and routes together, then forwarding, then gateways',
  async (t) => {
    const kinds = stepPhases(fresh).map((lanes) => lanes.map((lane) => lane.map((s) => s.kind)));
    t.same(kinds, [
      [['wireguard.create', 'link.up', 'address.add'], ['firewall.replace']],
      [['wireguard.sync'], ['routes']],
      [['sysctl.set']],
      [['gateway.add']],
    ]);
  },
);

t.test('every step exactly once, and the firewall phase before anything that lets traffic through', async (t) => {
  // Every subset of the fresh plan, in plan order.
  for (let mask = 0; mask < 1 << fresh.length; mask++) {
    const steps = fresh.filter((_, i) => mask & (1 << i));
    const phases = stepPhases(steps);
    const flat = phases.flat(2);
    t.equal(flat.length, steps.length);
    t.ok(steps.every((s) => flat.includes(s)));
    t.ok(
      phases.every((lanes) => lanes.length > 0 && lanes.every((l) => l.length > 0)),
      'no empty phase or lane',
    );
    const phaseOf = (kind: string) => phases.findIndex((lanes) => lanes.some((l) => l.some((s) => s.kind === kind)));
    const fw = phaseOf('firewall.replace');
    if (fw >= 0) {
      for (const k of ['wireguard.sync', 'routes', 'sysctl.set', 'gateway.add']) {
        const p = phaseOf(k);
        if (p >= 0 && p <= fw) t.fail(`${k} in phase ${p}, firewall in ${fw} (mask ${mask})`);
      }
    }
  }
});

t.test('a step of a kind it does not know is an error, not silently dropped', async (t) => {
  t.throws(() => stepPhases([{ kind: 'mystery' } as unknown as Step]), /unknown kind/);
});
