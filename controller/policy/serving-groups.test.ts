// Serving groups over random policies (fast-check): candidates and their order against an oracle
// written apart from the compiler, and the shape every config gives them: no prefix in two peers'
// allowed IPs, a group's prefixes in none, every candidate a peer, senders route them, candidates
// list them as local, liveness exactly with groups.
import fc from 'fast-check';
import t from 'tap';
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { compilePolicy, PolicyCompiler } from './compile.js';
import { arbSpec, build, containsAddr, P } from './property.fixture.js';
import type { Inventory, Policy } from './types.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 150);

interface Serving {
  server?: string;
  /** Candidates in order when the subnet is a serving group; else empty. */
  group: string[];
  /** A group with no healthy candidate: served on its boxes' own choice. */
  isUnconfirmed: boolean;
}

/**
 * A subnet's cluster is every subnet overlapping it, transitively; its candidates are the agents of
 * the cluster's via that are enrolled and advertise all of it, healthy ones first (each part in via
 * order); with two or more candidates it is a group, healthy or not (the edges decide); its server
 * is the first healthy one, else a group's first candidate (unconfirmed), else none.
 */
function servingOracle(policy: Policy, inventory: Inventory): Map<string, Serving> {
  const overlaps = (a: string, b: string): boolean => {
    const x = P(a);
    const y = P(b);
    return x.family === y.family && x.start <= y.end && y.start <= x.end;
  };
  const out = new Map<string, Serving>();
  for (const s of policy.subnets) {
    const cluster = new Set([s.name]);
    for (let isGrown = true; isGrown;) {
      isGrown = false;
      const cidrs = policy.subnets.filter((m) => cluster.has(m.name)).flatMap((m) => m.cidrs);
      for (const o of policy.subnets) {
        if (!cluster.has(o.name) && o.cidrs.some((c) => cidrs.some((d) => overlaps(c, d)))) {
          cluster.add(o.name);
          isGrown = true;
        }
      }
    }
    const cidrs = policy.subnets.filter((m) => cluster.has(m.name)).flatMap((m) => m.cidrs);
    const first = [...cluster].sort()[0];
    const via = policy.subnets.find((m) => m.name === first)?.via ?? [];
    const able = via
      .map((a) => inventory.agents.find((x) => x.name === a))
      .filter((a) => a !== undefined)
      .filter((a) => cidrs.every((c) => containsAddr(a.advertised, P(c))));
    const candidates = [...able.filter((a) => a.isHealthy), ...able.filter((a) => !a.isHealthy)].map(
      (a) => a.name as string,
    );
    const group = candidates.length >= 2 ? candidates : [];
    const healthy = able.find((a) => a.isHealthy)?.name as string | undefined;
    const server = healthy ?? group[0];
    out.set(s.name, {
      ...(server !== undefined ? { server } : {}),
      group,
      isUnconfirmed: group.length > 0 && healthy === undefined,
    });
  }
  return out;
}

const overlap = (a: string, b: string): boolean => {
  const x = P(a);
  const y = P(b);
  return x.family === y.family && x.start <= y.end && y.start <= x.end;
};

/** Throws the first way `cfg` breaks the shape of serving groups. */
function checkConfig(
  name: string,
  cfg: AgentConfig,
  serving: Map<string, Serving>,
  servedBy: (s: string) => string | undefined,
): void {
  const owner = new Map<string, string>();
  for (const p of cfg.peers)
    for (const x of p.allowedIps) {
      for (const [y, other] of owner)
        if (other !== p.name && overlap(x, y)) throw new Error(`${name}: ${x} of ${p.name} overlaps ${y} of ${other}`);
      owner.set(x, p.name);
    }
  const names = cfg.servingGroups.map((g) => g.name);
  if (names.join() !== [...names].sort().join()) throw new Error(`${name}: serving groups not sorted`);
  for (const g of cfg.servingGroups) {
    const want = serving.get(g.name)?.group ?? [];
    if (want.join() !== g.candidates.join())
      throw new Error(`${name}: ${g.name} candidates ${g.candidates.join(',')}, want ${want.join(',')}`);
    if (g.candidates[0] !== servedBy(g.name)) throw new Error(`${name}: ${g.name}'s first candidate is not its server`);
    for (const c of g.candidates)
      if (c !== name && !cfg.peers.some((p) => p.name === c))
        throw new Error(`${name}: candidate ${c} of ${g.name} is no peer`);
    for (const x of g.prefixes)
      for (const p of cfg.peers)
        if (p.allowedIps.some((y) => overlap(x, y)))
          throw new Error(`${name}: ${g.name}'s ${x} in ${p.name}'s allowed IPs`);
    const isCandidate = g.candidates.includes(name);
    if (isCandidate !== g.subnets.length > 0)
      throw new Error(`${name}: ${g.name} lists subnets ${g.subnets.join(',')}`);
    for (const sn of g.subnets)
      if (!cfg.localSubnets.some((l) => l.name === sn)) throw new Error(`${name}: ${sn} of ${g.name} is not local`);
    if (!isCandidate)
      for (const x of g.prefixes)
        if (!containsAddr(cfg.routes, P(x))) throw new Error(`${name}: ${x} of ${g.name} is not routed`);
  }
  if (cfg.servingGroups.length > 0 !== (cfg.liveness !== undefined))
    throw new Error(`${name}: liveness ${cfg.liveness ? 'without' : 'missing with'} serving groups`);
}

t.test('candidates and order follow via, enrolment, advertising and health', async (t) => {
  fc.assert(
    fc.property(arbSpec, (spec) => {
      const w = build(spec);
      const r = compilePolicy(w.policy, w.inventory);
      const serving = servingOracle(w.policy, w.inventory);
      for (const [subnet, want] of serving) {
        if (r.servedBy.get(subnet as never) !== want.server)
          throw new Error(`${subnet}: served by ${r.servedBy.get(subnet as never)}, want ${want.server}`);
        const got = r.candidates.get(subnet as never) ?? [];
        if (got.join() !== want.group.join())
          throw new Error(`${subnet}: candidates ${got.join(',')}, want ${want.group.join(',')}`);
        if (r.unconfirmed.some((u) => u.subnet === subnet) !== want.isUnconfirmed)
          throw new Error(`${subnet}: unconfirmed ${!want.isUnconfirmed}, want ${want.isUnconfirmed}`);
        if (r.unserved.some((u) => u.subnet === subnet) !== (want.server === undefined))
          throw new Error(`${subnet}: unserved ${want.server !== undefined}, want ${want.server === undefined}`);
      }
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});

t.test('every config: no prefix in two peers, a group in none, its candidates peers, routed or local', async (t) => {
  fc.assert(
    fc.property(arbSpec, fc.array(fc.nat(), { maxLength: 3 }), (spec, flips) => {
      const w = build(spec);
      const compiler = new PolicyCompiler();
      let inventory = w.inventory;
      let r = compiler.compile(w.policy, inventory);
      // After each health flip too (the incremental compiler's result).
      for (const i of [-1, ...flips]) {
        if (i >= 0) {
          const a = inventory.agents[i % inventory.agents.length];
          inventory = { agents: inventory.agents.map((x) => (x === a ? { ...x, isHealthy: !x.isHealthy } : x)) };
          r = compiler.update({ inventory });
        }
        const serving = servingOracle(w.policy, inventory);
        for (const [name, cfg] of r.configs) checkConfig(name, cfg, serving, (s) => r.servedBy.get(s as never));
      }
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});
