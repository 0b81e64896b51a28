// Section (e)'s figures: the variants and metrics it measures, and the tables and ratios it prints.
import type { ForwardingOptions } from './agent-forwarding.js';

export type VariantKey = 'few' | 'many' | 'few2' | 'none' | 'logged';
export interface Variant {
  key: VariantKey;
  label: string;
  tuples: (many: number) => number;
  dropTable: boolean;
  /** The agent runs its flow log (conntrack -E, the drop log's tcpdump); the others run none. */
  flowLog?: boolean;
}
export const VARIANTS: Variant[] = [
  { key: 'few', label: '10', tuples: () => 10, dropTable: false },
  { key: 'many', label: '', tuples: (n) => n, dropTable: false },
  { key: 'few2', label: '10 again', tuples: () => 10, dropTable: false },
  { key: 'none', label: 'no fw', tuples: () => 10, dropTable: true },
  { key: 'logged', label: '+flow log', tuples: (n) => n, dropTable: false, flowLog: true },
];
export const METRICS = ['tunConn', 'lanConn', 'tunMbit', 'lanMbit'] as const;
export type Metric = (typeof METRICS)[number];
export const METRIC_LABEL: Record<Metric, string> = {
  tunConn: 'tunnel, new TCP conn/s',
  lanConn: 'LAN->LAN, new TCP conn/s',
  tunMbit: 'tunnel, iperf3 Mbit/s',
  lanMbit: 'LAN->LAN, iperf3 Mbit/s',
};

export interface Sample extends Record<Metric, number> {
  rep: number;
  slot: number;
  variant: VariantKey;
  settleMs: number;
  load: string;
  /** CPU ms per process name in box A during the measurements (agent = node). */
  boxCpu: Record<string, number>;
  /** Machine's busy share during the measurements (all cores). */
  busy: number;
  /** Machine's busy share in the 0.5 s right before them. */
  idleBusy: number;
}

export interface SwapSlice {
  block: number;
  pos: number;
  many: boolean;
  lanConn: number;
  tunConn: number;
  tunMbit: number;
  agentMs: number;
  idleBusy: number;
}

export const f0 = (x: number) => Math.round(x).toLocaleString('en-GB');
export const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
export const labelOf = (v: Variant, tuples: number) => v.label || String(tuples);
export const spread = (xs: number[]) => `${f0(Math.min(...xs))}–${f0(Math.max(...xs))}`;
export const ratios = (xs: number[]) => `${pct(median(xs))} [${xs.map(pct).join(', ')}]`;

export const cpuText = (c: Record<string, number>) =>
  Object.entries(c)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, ms]) => `${k} ${ms.toFixed(0)}`)
    .join(', ');

/** Part 1's table and ratios. */
export function summarise(samples: Sample[], opts: Required<ForwardingOptions>): void {
  const label = (k: VariantKey) =>
    labelOf(
      VARIANTS.find((v) => v.key === k)!,
      opts.tuples,
    );
  const of = (k: VariantKey, m: Metric) => samples.filter((s) => s.variant === k).map((s) => s[m]);
  /** Ratio a/b within each rep (measured minutes apart, under the same load). */
  const paired = (a: VariantKey, b: VariantKey, m: Metric) => {
    const out: number[] = [];
    for (let rep = 0; rep < opts.reps; rep++) {
      const x = samples.find((s) => s.rep === rep && s.variant === a);
      const y = samples.find((s) => s.rep === rep && s.variant === b);
      if (x && y) out.push(x[m] / y[m]);
    }
    return out;
  };
  console.log(
    `\n    medians [min–max] over ${opts.reps} reps; "paired" = the ratio within each rep, median [each rep]`,
  );
  console.log(`    ${'figure'.padEnd(26)} ${VARIANTS.map((v) => labelOf(v, opts.tuples).padStart(24)).join('')}`);
  for (const m of METRICS) {
    console.log(
      `    ${METRIC_LABEL[m].padEnd(26)} ${VARIANTS.map((v) => `${f0(median(of(v.key, m)))} [${spread(of(v.key, m))}]`.padStart(24)).join('')}`,
    );
  }
  console.log('');
  const verdicts: string[] = [];
  for (const m of METRICS) {
    const many = median(of('many', m)) / median(of('few', m));
    const noise = median(of('few2', m)) / median(of('few', m));
    const none = median(of('none', m)) / median(of('few', m));
    const logged = median(of('logged', m)) / median(of('many', m));
    console.log(
      `    ${METRIC_LABEL[m].padEnd(26)} ${label('many')} vs 10: ${pct(many)} (paired ${ratios(paired('many', 'few', m))}); noise, 10 again vs 10: ${pct(noise)} (paired ${ratios(paired('few2', 'few', m))}); no fw vs 10: ${pct(none)}; flow log on vs off: ${pct(logged)} (paired ${ratios(paired('logged', 'many', m))})`,
    );
    // Against the two 10-tuple variants together: the noise floor is what one 10-tuple box varies by.
    const tens = [...of('few', m), ...of('few2', m)];
    const manyVsTens = median(of('many', m)) / median(tens);
    const tenSpread = (Math.max(...tens) - Math.min(...tens)) / median(tens);
    verdicts.push(
      `${METRIC_LABEL[m]}: ${label('many')} = ${pct(manyVsTens)} of all 10-tuple runs (their own spread ±${pct(tenSpread / 2)})`,
    );
  }
  const tput = median(of('many', 'tunMbit')) / median([...of('few', 'tunMbit'), ...of('few2', 'tunMbit')]);
  console.log(
    `\n    issue 4 target, iperf3 through the box (tunnel) with ${label('many')} tuples >= 90 % of 10: ${pct(tput)} (${tput >= 0.9 ? 'meets' : 'MISSES'})`,
  );
  for (const v of verdicts) console.log(`    ${v}`);
  const agentMs = samples.map((s) => s.boxCpu.node ?? 0);
  const monMs = samples.map((s) => (s.boxCpu.ip ?? 0) + (s.boxCpu.nft ?? 0) + (s.boxCpu.stdbuf ?? 0));
  console.log(
    `    box A during the measurements: agent (node) ${f0(Math.min(...agentMs))}–${f0(Math.max(...agentMs))} ms CPU, its ip/nft monitors ${f0(Math.min(...monMs))}–${f0(Math.max(...monMs))} ms;` +
      ` waited ${f0(Math.min(...samples.map((s) => s.settleMs)))}–${f0(Math.max(...samples.map((s) => s.settleMs)))} ms for namespace clean-up; machine busy before each ${pct(Math.min(...samples.map((s) => s.idleBusy)))}–${pct(Math.max(...samples.map((s) => s.idleBusy)))}`,
  );
}

/** Part 2's ratios: the many-tuple slices against the 10-tuple ones, per block and in all. */
export function summariseSwaps(sw: SwapSlice[], opts: Required<ForwardingOptions>): void {
  const SW: Array<[keyof SwapSlice, string]> = [
    ['lanConn', 'LAN->LAN, new TCP conn/s'],
    ['tunConn', 'tunnel, new TCP conn/s'],
    ['tunMbit', 'tunnel, iperf3 Mbit/s'],
  ];
  console.log('');
  for (const [m, name] of SW) {
    const val = (block: number, pos: number) => sw.find((x) => x.block === block && x.pos === pos)![m] as number;
    const fewAll = sw.filter((x) => !x.many).map((x) => x[m] as number);
    const manyAll = sw.filter((x) => x.many).map((x) => x[m] as number);
    const blocks = Array.from({ length: opts.swapBlocks }, (_, i) => i);
    const manyVsFew = blocks.map((i) => (val(i, 1) + val(i, 2)) / (val(i, 0) + val(i, 3)));
    const fewVsFew = blocks.map((i) => val(i, 3) / val(i, 0));
    console.log(
      `    ${name.padEnd(26)} 10: ${f0(median(fewAll))} [${spread(fewAll)}], ${opts.tuples}: ${f0(median(manyAll))} [${spread(manyAll)}] = ${pct(median(manyAll) / median(fewAll))};` +
        ` per block ${opts.tuples} vs 10 ${ratios(manyVsFew)}; noise, last 10 vs first 10 of each block ${ratios(fewVsFew)}`,
    );
  }
  const swT =
    median(sw.filter((x) => x.many).map((x) => x.tunMbit)) / median(sw.filter((x) => !x.many).map((x) => x.tunMbit));
  console.log(
    `    issue 4 target on the swapped firewall, iperf3 (tunnel) ${opts.tuples} vs 10: ${pct(swT)} (${swT >= 0.9 ? 'meets' : 'MISSES'}); agent CPU during the slices ${f0(Math.min(...sw.map((x) => x.agentMs)))}–${f0(Math.max(...sw.map((x) => x.agentMs)))} ms`,
  );
}
