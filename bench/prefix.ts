// Prefix parsing and canonical text: lib/prefix.ts's scanner against ipaddr.js (and ip-address when
// it is installed), on 100,000 prefixes of each kind; also what a memo hit (Map.get) costs, the
// saving a memo of canonical texts could offer. Figures: docs/performance.md, "Prefix scanner".
//
//   npm run bench:prefix [-- --count 100000 --runs 7]
import { performance } from 'node:perf_hooks';
import ipaddr from 'ipaddr.js';
import { canonicalText, parsePrefix } from '../lib/prefix.js';
import { canonicalPrefix } from '../agent/host/canonical.js';
import { parsePrefixStrict } from '../controller/policy/prefixes.js';
import { numberArg } from './args.js';

const COUNT = numberArg('count', 100_000);
const RUNS = numberArg('runs', 7);

// Deterministic inputs (a linear congruential generator), as configs have them.
let seed = 12345;
const next = (): number => (seed = (seed * 48271) % 2147483647);
const v4 = Array.from({ length: COUNT }, () => `${1 + (next() % 223)}.${next() % 256}.${next() % 256}.0/24`);
const v4Host = Array.from(
  { length: COUNT },
  () => `${1 + (next() % 223)}.${next() % 256}.${next() % 256}.${1 + (next() % 254)}/${16 + (next() % 9)}`,
);
const v6 = Array.from(
  { length: COUNT },
  () => `fd${(next() % 256).toString(16)}:${(next() % 65536).toString(16)}:${(next() % 65536).toString(16)}::/48`,
);

type Candidate = [name: string, canonical: (text: string) => string];

const scanner: Candidate = [
  'lib/prefix.ts',
  (text) => {
    const r = parsePrefix(text);
    if (!r.ok) throw new Error(r.message);
    return canonicalText(r.prefix, text);
  },
];
const agent: Candidate = ['agent canonicalPrefix (no memo)', canonicalPrefix];
const controller: Candidate = [
  'controller parsePrefixStrict',
  (text) => {
    const r = parsePrefixStrict(text);
    return r.ok ? r.prefix.text : r.reason === 'host-bits' ? r.network : '';
  },
];
const ipaddrJs: Candidate = [
  'ipaddr.js',
  (text) => {
    const [addr, len] = ipaddr.parseCIDR(text);
    const net =
      addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
    return `${net.toString()}/${len}`;
  },
];

async function ipAddress(): Promise<Candidate | undefined> {
  try {
    const m = (await import('ip-address')) as {
      Address4: new (t: string) => IpAddr;
      Address6: new (t: string) => IpAddr;
    };
    return [
      'ip-address',
      (text) => {
        const a = text.includes(':') ? new m.Address6(text) : new m.Address4(text);
        return `${a.startAddress().correctForm()}/${a.subnetMask}`;
      },
    ];
  } catch {
    return undefined; // not installed: a transitive dependency only
  }
}
interface IpAddr {
  startAddress(): { correctForm(): string };
  subnetMask: number;
}

function time(fn: (text: string) => string, list: readonly string[]): number {
  const t0 = performance.now();
  let sink = 0;
  for (const text of list) sink += fn(text).length;
  const ms = performance.now() - t0;
  if (sink === 0) throw new Error('nothing parsed');
  return ms;
}

const median = (xs: number[]): number => xs.slice().sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
const memo = new Map<string, string>(v4.map((p) => [p, p]));
const memoHit: Candidate = ['Map.get (a memo hit)', (text) => memo.get(text) ?? ''];

const candidates = [scanner, agent, controller, ipaddrJs, await ipAddress(), memoHit].filter(
  (c): c is Candidate => c !== undefined,
);
console.log(
  `node ${process.version}, ${COUNT.toLocaleString('en')} prefixes a list, median of ${RUNS} runs (first run: cold JIT)`,
);
console.log('| candidate | list | first run | median | ns/prefix |');
console.log('|---|---|---|---|---|');
for (const [list, texts] of [
  ['IPv4 /24, canonical', v4],
  ['IPv4 with host bits', v4Host],
  ['IPv6 /48', v6],
] as const) {
  for (const [name, fn] of candidates) {
    if (fn === memoHit[1] && texts !== v4) continue;
    const runs = Array.from({ length: RUNS }, () => time(fn, texts));
    const m = median(runs.slice(1));
    console.log(
      `| ${name} | ${list} | ${runs[0]!.toFixed(1)} ms | ${m.toFixed(1)} ms | ${((m * 1e6) / texts.length).toFixed(0)} |`,
    );
  }
}
