// Relay benchmark: `npm run bench:relay` (root; needs `make build`). Prints figures; it is not a test
// and never fails on a time.
//
// One testbed, two underlay networks with no route between them: `gp` and `gp2` on N3 only, `civic`
// on the PSN only, `hub` on both (relay). gp -> gp2 is a direct pair over N3, gp -> civic a relayed
// pair through the hub; the same real agents, wireguard-go and nft carry both. Measured in one run:
// TCP throughput (iperf3, host to host through both edge boxes; direct and relayed runs alternate,
// median of the rounds), RTT (ping, median), the relay's CPU per Gbit/s (the kernel's softirq time
// cannot be told apart per namespace, so both paths are driven at the same fixed rate, below what
// saturates the 2 cores, and the whole machine's extra busy time on the relayed path is divided by
// that rate), and the time from a policy change opening a new pair to its first packet (median of
// the rounds; each round closes the pairs again first).
//
//   npm run bench:relay -- [--seconds 5] [--rounds 3] [--rate-mbit 100]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Fleet } from '../test/e2e/fleet.js';
import { Testbed } from '../test/testbed/testbed.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    'rate-mbit': { type: 'string', default: '100' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const RATE_MBIT = Number(values['rate-mbit']);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const span = (xs: number[], digits = 0): string =>
  `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;

const policy = (withNew: boolean) => `
version: 1
underlays: { n3-wan: { description: N3 }, psn-wan: { description: PSN } }
zones: { n3: { description: N3 }, psn: { description: PSN } }
agents:
  gp: { zones: [n3], underlays: [n3-wan] }
  gp2: { zones: [n3], underlays: [n3-wan] }
  civic: { zones: [psn], underlays: [psn-wan] }
  hub: { zones: [n3, psn], underlays: [n3-wan, psn-wan], relay: true }
subnets:
  gp-lan: { cidr: 10.30.1.0/24, zone: n3, via: [gp] }
  gp2-lan: { cidr: 10.31.1.0/24, zone: n3, via: [gp2] }
  civic-lan: { cidr: 10.50.1.0/24, zone: psn, via: [civic] }
rules:
  - { name: direct, from: gp-lan, to: gp2-lan, ports: [tcp/5201, icmp] }
  - { name: relayed, from: gp-lan, to: civic-lan, ports: [tcp/5201, icmp] }
${withNew ? '  - { name: new-direct, from: gp2-lan, to: gp-lan, ports: [tcp/8080] }\n  - { name: new-relayed, from: civic-lan, to: gp-lan, ports: [tcp/8081] }' : ''}
`;

const bed = await Testbed.create({
  controller: true,
  underlays: ['n3-wan', 'psn-wan'],
  boxes: [
    { name: 'gp', underlays: ['n3-wan'], lans: [{ lan: 'gp-lan', address: '10.30.1.1/24' }] },
    { name: 'gp2', underlays: ['n3-wan'], lans: [{ lan: 'gp2-lan', address: '10.31.1.1/24' }] },
    { name: 'civic', underlays: ['psn-wan'], lans: [{ lan: 'civic-lan', address: '10.50.1.1/24' }] },
    { name: 'hub', underlays: ['n3-wan', 'psn-wan'], lans: [{ lan: 'hub-lan', address: '10.40.1.1/24' }] },
  ],
  hosts: [
    { name: 'gp-ws', lan: 'gp-lan', address: '10.30.1.10/24' },
    { name: 'gp2-ws', lan: 'gp2-lan', address: '10.31.1.10/24' },
    { name: 'civic-srv', lan: 'civic-lan', address: '10.50.1.20/24' },
  ],
});

/** Whole-machine busy and total jiffies from /proc/stat. */
function cpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + f[4]!;
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

async function iperf(to: string, address: string, rateMbit?: number): Promise<{ mbps: number; cpuCores: number }> {
  const server = bed.spawn(to, ['iperf3', '-s', '-1', '-p', '5201']);
  await new Promise((r) => setTimeout(r, 500));
  const before = cpu();
  const rate = rateMbit === undefined ? [] : ['-b', `${rateMbit}M`];
  const r = await bed.exec('gp-ws', ['iperf3', '-c', address, '-p', '5201', '-t', String(SECONDS), ...rate, '-J'], {
    timeoutMs: (SECONDS + 20) * 1000,
  });
  const after = cpu();
  await bed.kill(server.pid).catch(() => undefined);
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  // Busy jiffies over elapsed jiffies of one core: how many of the 2 cores the run kept busy.
  const elapsed = (after.total - before.total) / 2;
  return { mbps: j.end.sum_received.bits_per_second / 1e6, cpuCores: (after.busy - before.busy) / elapsed };
}

async function rttMs(address: string): Promise<number> {
  const r = await bed.exec('gp-ws', ['ping', '-n', '-c', '200', '-i', '0.01', address], {
    timeoutMs: 30_000,
    check: false,
  });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? NaN;
}

async function firstPacketMs(fleet: Fleet, round: number): Promise<{ direct: number; relayed: number }> {
  const a = await bed.listen('gp-ws', 'tcp', 8080);
  const b = await bed.listen('gp-ws', 'tcp', 8081);
  // Close the two pairs first (a round after the first reopens them).
  await fleet.applyPolicy(policy(false), `bench: close new pairs (round ${round})`);
  for (const [from, port] of [
    ['gp2-ws', 8080],
    ['civic-srv', 8081],
  ] as const) {
    const since = Date.now();
    while ((await bed.tcpProbe(from, '10.30.1.10', port, { timeoutMs: 200 })) === 'open') {
      if (Date.now() - since > 30_000)
        throw new Error(`${from} -> :${port} still open 30 s after the pair was removed`);
    }
  }
  const { acceptedAtMs } = await fleet.applyPolicy(policy(true), `bench: new pairs (round ${round})`);
  const wait = async (from: string, port: number) => {
    for (;;) {
      if ((await bed.tcpProbe(from, '10.30.1.10', port, { timeoutMs: 200 })) === 'open')
        return Date.now() - acceptedAtMs;
      if (Date.now() - acceptedAtMs > 30_000) return NaN;
    }
  };
  const [direct, relayed] = await Promise.all([wait('gp2-ws', 8080), wait('civic-srv', 8081)]);
  await a.close();
  await b.close();
  return { direct, relayed };
}

try {
  const fleet = await Fleet.start(bed, {
    agents: [{ box: 'gp' }, { box: 'gp2' }, { box: 'civic' }, { box: 'hub', relay: true }],
    policyText: policy(false),
    timeoutMs: 120_000,
  });
  // Warm the tunnels (handshakes) before measuring.
  await rttMs('10.31.1.10');
  await rttMs('10.50.1.20');
  const direct: number[] = [];
  const relayed: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate the order so a drift in the machine's speed does not favour one path.
    const pair = i % 2 === 0 ? ['direct', 'relayed'] : ['relayed', 'direct'];
    for (const which of pair) {
      if (which === 'direct') direct.push((await iperf('gp2-ws', '10.31.1.10')).mbps);
      else relayed.push((await iperf('civic-srv', '10.50.1.20')).mbps);
    }
  }
  const cpuDirect: number[] = [];
  const cpuRelayed: number[] = [];
  const rttDirect: number[] = [];
  const rttRelayed: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    cpuDirect.push((await iperf('gp2-ws', '10.31.1.10', RATE_MBIT)).cpuCores);
    cpuRelayed.push((await iperf('civic-srv', '10.50.1.20', RATE_MBIT)).cpuCores);
    rttDirect.push(await rttMs('10.31.1.10'));
    rttRelayed.push(await rttMs('10.50.1.20'));
  }
  const firsts: Array<{ direct: number; relayed: number }> = [];
  for (let i = 0; i < ROUNDS; i++) firsts.push(await firstPacketMs(fleet, i));
  const firstDirect = firsts.map((f) => f.direct);
  const firstRelayed = firsts.map((f) => f.relayed);
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(`bench:relay (${ROUNDS} rounds, ${SECONDS} s iperf3 per run, 2 cores, wireguard-go userspace)`);
  out(
    `  TCP throughput   direct ${median(direct).toFixed(0)} Mbit/s (${span(direct)})   relayed ${median(relayed).toFixed(0)} Mbit/s (${span(relayed)})   ratio ${(median(relayed) / median(direct)).toFixed(2)}`,
  );
  out(
    `  machine CPU at ${RATE_MBIT} Mbit/s (median)   direct ${median(cpuDirect).toFixed(3)} cores (${span(cpuDirect, 3)})   relayed ${median(cpuRelayed).toFixed(3)} cores (${span(cpuRelayed, 3)})`,
  );
  out(
    `  relay CPU per Gbit/s (extra machine CPU on the relayed path / rate; includes the testbed's second router namespace)  ${((median(cpuRelayed) - median(cpuDirect)) / (RATE_MBIT / 1000)).toFixed(2)} cores`,
  );
  out(
    `  RTT median of ${ROUNDS} x 200 pings   direct ${median(rttDirect).toFixed(3)} ms (${span(rttDirect, 3)})   relayed ${median(rttRelayed).toFixed(3)} ms (${span(rttRelayed, 3)})   added ${(median(rttRelayed) - median(rttDirect)).toFixed(3)} ms`,
  );
  out(
    `  new pair, policy accepted -> first TCP connection (median)   direct ${median(firstDirect).toFixed(0)} ms (${span(firstDirect)})   relayed ${median(firstRelayed).toFixed(0)} ms (${span(firstRelayed)})   ratio ${(median(firstRelayed) / median(firstDirect)).toFixed(2)}`,
  );
  await fleet.stop();
} finally {
  await bed.destroy();
}
