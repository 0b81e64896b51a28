// Policy compiler benchmark: `npm run bench:policy`. Prints figures; it is not a test and never fails
// on a time. Each fleet size runs in its own process so peak RSS is that size's own.
//
//   fleet: N agents, 2N subnets (/24s, 5% also with an IPv6 /64, 10% with a standby), 100 groups of
//   50-300 subnets plus 10 groups of groups, 2,000 rules: 10% from a group to a central service,
//   90% between 1-3 subnets on each side.
//
// Then `crosslink policy check` of the 10,000-agent fleet as a whole process (`dist/cli/main.js`,
// hence `make build` first), the file written as YAML and as JSON: wall time and peak RSS, median
// of 3. `--whole-process-only` runs that part alone.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { PolicyCompiler, compilePolicy } from '../controller/policy/compile.js';
import { validatePolicy } from '../controller/policy/validate.js';
import type { Inventory, Policy } from '../controller/policy/types.js';

const RULES = 2000;

function rng(seed: number): () => number {
  // mulberry32: deterministic, so every run compiles the same fleet.
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export function generate(agentCount: number, seed = 42): { raw: unknown; inventory: Inventory } {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => {
    const x = xs[Math.floor(rand() * xs.length)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  };
  const agents: Record<string, { zones: string[] }> = {};
  const zonesOf = (agent: string): string[] => agents[agent]?.zones ?? [];
  const agentNames: string[] = [];
  for (let i = 0; i < agentCount; i++) {
    const name = `edge-${String(i).padStart(5, '0')}`;
    const r = rand();
    agents[name] = { zones: r < 0.6 ? ['n3'] : r < 0.95 ? ['psn'] : ['n3', 'psn'] };
    agentNames.push(name);
  }
  const subnets: Record<string, { cidr: string[]; zone: string; via: string[] }> = {};
  const subnetNames: string[] = [];
  const advertised = new Map<string, string[]>();
  for (let i = 0; i < agentCount * 2; i++) {
    const agent = agentNames[i >> 1]!; // i < 2 * agentCount
    const zone = pick(zonesOf(agent));
    const cidr = [`10.${(i >> 8) & 255}.${i & 255}.0/24`];
    if (rand() < 0.05) cidr.push(`fd00:${i.toString(16)}::/64`);
    const via = [agent];
    const standby = agentNames[((i >> 1) + 1) % agentCount]!;
    if (rand() < 0.1 && zonesOf(standby).includes(zone)) via.push(standby);
    const name = `net-${String(i).padStart(5, '0')}`;
    subnets[name] = { cidr, zone, via };
    subnetNames.push(name);
    for (const a of via) advertised.set(a, [...(advertised.get(a) ?? []), ...cidr]);
  }
  const groups: Record<string, string[]> = {};
  for (let g = 0; g < 100; g++) {
    const size = 50 + Math.floor(rand() * 250);
    const members = new Set<string>();
    while (members.size < Math.min(size, subnetNames.length)) members.add(pick(subnetNames));
    groups[`region-${g}`] = [...members];
  }
  for (let g = 0; g < 10; g++) groups[`area-${g}`] = Array.from({ length: 5 }, (_, k) => `region-${g * 10 + k}`);
  const services = subnetNames.slice(0, 50);
  const portChoices = [
    ['tcp/443'],
    ['tcp/2575'],
    ['udp/53', 'tcp/53'],
    ['icmp'],
    ['tcp/8000-8100'],
    ['tcp/443', 'icmp'],
  ];
  const rules: unknown[] = [];
  for (let r = 0; r < RULES; r++) {
    let from: string[];
    let to: string[];
    if (r % 10 === 0) {
      const group = pick(Object.keys(groups));
      const service = pick(services);
      from = [group];
      to = [service];
      if (groups[group]?.includes(service)) from = [pick(subnetNames.slice(50))];
    } else {
      from = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(subnetNames));
      to = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(subnetNames)).filter((x) => !from.includes(x));
      if (to.length === 0) to = [subnetNames.find((x) => !from.includes(x)) as string];
    }
    rules.push({
      name: `rule-${r}`,
      from: [...new Set(from)],
      to: [...new Set(to)],
      ports: pick(portChoices),
      ticket: `CHG-${r}`,
    });
  }
  const raw = {
    version: 1,
    zones: { n3: { description: 'N3' }, psn: { description: 'PSN' } },
    agents,
    subnets,
    groups,
    rules,
  };
  const inventory: Inventory = {
    agents: agentNames.map((name, i) => ({
      name: name as never,
      publicKey: `key-${name}`,
      endpoint: `${name}.invalid:51820`,
      overlayAddress: `100.${64 + ((i + 1) >> 16)}.${((i + 1) >> 8) & 255}.${(i + 1) & 255}/10`,
      advertised: advertised.get(name) ?? [],
      isHealthy: true,
    })),
  };
  return { raw, inventory };
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Wall and CPU time (user+system, all threads: includes GC helpers) of one call. */
function timed<T>(fn: () => T): { value: T; wall: string; cpu: string } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = fn();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { value, wall: `${wallMs.toFixed(0)} ms`, cpu: `${((c.user + c.system) / 1000).toFixed(0)} ms` };
}

function runOne(agentCount: number): void {
  const { raw, inventory } = generate(agentCount);
  gc();
  const v = timed(() => validatePolicy(raw));
  if (!v.value.policy) throw new Error(`generated policy invalid: ${JSON.stringify(v.value.errors?.slice(0, 3))}`);
  const policy = v.value.policy;
  gc();

  // Full compile, twice with a fresh compiler (the box is shared; the better run is reported).
  let compiler = new PolicyCompiler();
  const fullA = timed(() => compiler.compile(policy, inventory));
  gc();
  compiler = new PolicyCompiler();
  const fullB = timed(() => compiler.compile(policy, inventory));
  const fullRun = Number.parseInt(fullA.wall) <= Number.parseInt(fullB.wall) ? fullA : fullB;
  const full = fullB.value;
  let peers = 0;
  let flowRules = 0;
  for (const c of full.configs.values()) {
    peers += c.peers.length;
    flowRules +=
      (c.firewall?.outbound.length ?? 0) + (c.firewall?.inbound.length ?? 0) + (c.firewall?.local.length ?? 0);
  }

  // One rule changes (a port added to a subnet-to-subnet rule), then back, then again: best of 3.
  const target = policy.rules[7];
  const changed: Policy = {
    ...policy,
    rules: policy.rules.map((r) =>
      r === target ? { ...r, ports: [...r.ports, { protocol: 'tcp' as const, first: 8443, last: 8443 }] } : r,
    ),
  };
  const oneRuns = [changed, policy, changed].map((p) => timed(() => compiler.update({ policy: p })));
  const oneRun = oneRuns.reduce((a, b) => (Number.parseInt(a.wall) <= Number.parseInt(b.wall) ? a : b));

  // The controller's path: the edited document is validated again, so every object is new; the
  // compiler still finds the one changed rule by content.
  const rawRules = (raw as { rules: Array<{ ports: string[] }> }).rules;
  const reparsed = validatePolicy({
    ...(raw as object),
    rules: rawRules.map((r, i) => (i === 7 ? { ...r, ports: [...r.ports, 'tcp/9443'] } : r)),
  });
  if (!reparsed.policy) throw new Error('reparsed policy invalid');
  const reparsedPolicy = reparsed.policy;
  const reparsedRun = timed(() => compiler.update({ policy: reparsedPolicy }));
  compiler.update({ policy: changed });

  // One group rule changes (a port added to group -> central service).
  const groupRule = changed.rules[10];
  const changed2: Policy = {
    ...changed,
    rules: changed.rules.map((r) =>
      r === groupRule ? { ...r, ports: [...r.ports, { protocol: 'tcp' as const, first: 8443, last: 8443 }] } : r,
    ),
  };
  const groupRun = timed(() => compiler.update({ policy: changed2 }));

  // One agent that serves a central service goes unhealthy (its subnets fail over or go unserved).
  const sick = { agents: inventory.agents.map((a, i) => (i === 3 ? { ...a, isHealthy: false } : a)) };
  const sickRun = timed(() => compiler.update({ inventory: sick }));

  // Spot check: incremental equals full for the last state.
  const check = compilePolicy(changed2, sick);
  let isEqual = check.configs.size === sickRun.value.configs.size;
  for (const [n, c] of check.configs) if (sickRun.value.configs.get(n)?.contentHash !== c.contentHash) isEqual = false;

  const rssMb = (process.resourceUsage().maxRSS / 1024).toFixed(0);
  console.log(
    JSON.stringify({
      agents: agentCount,
      subnets: policy.subnets.length,
      groups: policy.groups.length,
      rules: policy.rules.length,
      peers,
      flowRules,
      validate: `${v.wall} (cpu ${v.cpu})`,
      full: `${fullRun.wall} (cpu ${fullRun.cpu})`,
      oneRule: `${oneRun.wall} (cpu ${oneRun.cpu})`,
      oneRuleRebuilt: oneRun.value.recomputedAgents,
      oneRuleReparsed: `${reparsedRun.wall} (cpu ${reparsedRun.cpu})`,
      oneRuleReparsedRebuilt: reparsedRun.value.recomputedAgents,
      groupRule: `${groupRun.wall} (cpu ${groupRun.cpu})`,
      groupRuleRebuilt: groupRun.value.recomputedAgents,
      agentDown: `${sickRun.wall} (cpu ${sickRun.cpu})`,
      agentDownRebuilt: sickRun.value.recomputedAgents,
      incrementalEqualsFull: isEqual,
      peakRssMb: Number(rssMb),
    }),
  );
}

/** `crosslink policy check -f FILE` as a whole process: wall ms and peak RSS MB, median of `runs`. */
function wholeProcess(agentCount: number, runs = 3): void {
  const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'xl-bench-policy-'));
  try {
    const { raw } = generate(agentCount);
    const files = { YAML: join(dir, 'fleet.yaml'), JSON: join(dir, 'fleet.json') };
    writeFileSync(files.YAML, stringify(raw, { aliasDuplicateObjects: false }));
    writeFileSync(files.JSON, JSON.stringify(raw, null, 2));
    // The child reports its own peak RSS as it exits (resourceUsage: kilobytes).
    const rss =
      'data:text/javascript,process.on("exit",()=>process.stderr.write("\\nmaxrss_kb="+process.resourceUsage().maxRSS+"\\n"))';
    console.log(
      `\ncrosslink policy check, whole process, ${agentCount} agents (median of ${runs}; node ${process.version}):`,
    );
    for (const [format, file] of Object.entries(files)) {
      const walls: number[] = [];
      const rssMb: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const r = spawnSync(process.execPath, ['--import', rss, cli, 'policy', 'check', '-f', file], {
          encoding: 'utf8',
        });
        walls.push(performance.now() - t0);
        if (r.status !== 0) {
          console.error(`policy check exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
          process.exitCode = 1;
          return;
        }
        rssMb.push(Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      console.log(
        `  ${format}: ${(median(walls) / 1000).toFixed(2)} s (runs ${walls.map((w) => (w / 1000).toFixed(2)).join(', ')}), peak RSS ${median(rssMb).toFixed(0)} MB   target <= 3 s, <= 1 GB`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] === fileURLToPath(import.meta.url);
const argIndex = process.argv.indexOf('--agents');
if (!isMain) {
  // imported (e.g. by a test): do nothing
} else if (argIndex >= 0) {
  runOne(Number(process.argv[argIndex + 1]));
} else if (process.argv.includes('--whole-process-only')) {
  wholeProcess(10_000);
} else {
  const sizes = [1000, 5000, 10000];
  console.log(`policy compiler benchmark: ${RULES} rules, 2 subnets per agent; node ${process.version}`);
  const rows: Array<Record<string, string | number>> = [];
  for (const n of sizes) {
    const r = spawnSync(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), '--agents', String(n)],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) {
      console.error(r.stderr);
      process.exitCode = 1;
      break;
    }
    const row = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, string | number>;
    rows.push(row);
    console.log(row);
  }
  console.log(
    '\n| agents | subnets | rules | peers (sum) | validate | full compile | one-rule recompile (agents rebuilt) | same, re-validated document (rebuilt) | group-rule recompile (rebuilt) | hub agent down (rebuilt) | peak RSS |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.agents} | ${r.subnets} | ${r.rules} | ${r.peers} | ${r.validate} | ${r.full} | ${r.oneRule} (${r.oneRuleRebuilt}) | ${r.oneRuleReparsed} (${r.oneRuleReparsedRebuilt}) | ${r.groupRule} (${r.groupRuleRebuilt}) | ${r.agentDown} (${r.agentDownRebuilt}) | ${r.peakRssMb} MB |`,
    );
  }
  console.log(
    `\nload average at the end: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} (2 cores; figures are wall time, CPU time in brackets)`,
  );
  if (process.exitCode !== 1) wholeProcess(10_000);
}
