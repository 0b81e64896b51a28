// Property tests on generated policies (fast-check): least privilege, non-overlapping AllowedIPs,
// firewall == evaluate == tests, determinism, no prefix expansion, incremental == full.
import fc from 'fast-check';
import t from 'tap';
import type { AgentConfig, FlowRule } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { compilePolicy, PolicyCompiler, type CompileResult } from './compile.js';
import { evaluate, type EvalProtocol } from './evaluate.js';
import { mergeParsed, type ParsedPrefix } from './prefixes.js';
import {
  addressText,
  arbSpec,
  at,
  build,
  containsAddr,
  expand,
  hostOf,
  P,
  PORTS,
  type World,
} from './property.fixture.js';
import { runPolicyTests } from './tests.js';
import type { Policy, PolicyTest } from './types.js';
import { validatePolicy } from './validate.js';

function protoMatches(r: FlowRule, proto: EvalProtocol, port?: number): boolean {
  if (r.protocol === 'any') return true;
  if (r.protocol !== proto) return false;
  if (proto === 'icmp' || r.ports.length === 0) return true;
  return r.ports.some((x) => port !== undefined && x.first <= port && port <= x.last);
}

/** What the compiled boxes would do with a new connection. undefined: an end is unserved. */
function firewallAllows(
  w: World,
  r: CompileResult,
  src: ParsedPrefix,
  dst: ParsedPrefix,
  proto: EvalProtocol,
  port?: number,
): boolean | undefined {
  const server = (a: ParsedPrefix): string | undefined => {
    const s = w.policy.subnets.find((x) => containsAddr(x.cidrs, a) && r.servedBy.has(x.name));
    return s ? r.servedBy.get(s.name) : undefined;
  };
  const A = server(src);
  const B = server(dst);
  if (!A || !B) return undefined;
  const ca = r.configs.get(A as never) as AgentConfig;
  const cb = r.configs.get(B as never) as AgentConfig;
  const match = (x: FlowRule): boolean =>
    containsAddr(x.sources, src) && containsAddr(x.destinations, dst) && protoMatches(x, proto, port);
  if (A === B) return (ca.firewall?.local ?? []).some(match);
  const out = (ca.firewall?.outbound ?? []).some(match);
  const inn = (cb.firewall?.inbound ?? []).some(match);
  const isTunnelOk =
    allowedTo(ca, B, dst) && allowedTo(cb, A, src) && (containsAddr(ca.routes, dst) || isCandidateOf(ca, dst));
  // Every standby of the destination would do the same once the sender moved to it (edge failover).
  const group = ca.servingGroups.find((g) => containsAddr(g.prefixes, dst));
  for (const standby of group?.candidates.slice(1) ?? []) {
    if (standby === A) continue;
    const cs = r.configs.get(standby as never) as AgentConfig;
    const standbyIn = (cs.firewall?.inbound ?? []).some(match);
    const isStandbyTunnelOk = !!ca.peers.find((p) => p.name === standby) && allowedTo(cs, A, src);
    if (standbyIn !== inn || (out && inn && isTunnelOk && !isStandbyTunnelOk))
      throw new Error(`standby ${standby} of ${B} would not carry what ${B} carries (inbound ${standbyIn} vs ${inn})`);
  }
  return out && inn && isTunnelOk;
}

/** Whether a box gives peer `peer` address `a` before any failover view: its allowed IPs, plus every
 *  serving group whose first candidate it is (agent/failover/groups.ts activeOf: a sending box
 *  gives the group to its first candidate; a standby, to the candidate that holds it). */
function allowedTo(cfg: AgentConfig, peer: string, a: ParsedPrefix): boolean {
  const p = cfg.peers.find((x) => x.name === peer);
  if (!p) return false;
  if (containsAddr(p.allowedIps, a)) return true;
  return cfg.servingGroups.some((g) => g.candidates[0] === peer && containsAddr(g.prefixes, a));
}

function isCandidateOf(cfg: AgentConfig, a: ParsedPrefix): boolean {
  return cfg.servingGroups.some((g) => g.subnets.length > 0 && containsAddr(g.prefixes, a));
}

const RUNS = Number(process.env.PROPERTY_RUNS ?? 150);

t.test('no agent learns a peer without an allowed flow, and every flow has its peer', async (t) => {
  fc.assert(
    fc.property(arbSpec, (spec) => {
      const w = build(spec);
      const r = compilePolicy(w.policy, w.inventory);
      const expected = new Map<string, Set<string>>();
      const pair = (a: string, b: string): void => {
        if (a === b) return;
        for (const [x, y] of [
          [a, b],
          [b, a],
        ] as const) {
          if (!expected.has(x)) expected.set(x, new Set());
          expected.get(x)!.add(y);
        }
      };
      // Every box that may serve a subnet (the candidates of a serving group, or its one server).
      const servers = (s: string): readonly string[] => {
        const c = r.candidates.get(s as never);
        if (c) return c;
        const a = r.servedBy.get(s as never);
        return a ? [a] : [];
      };
      for (const rule of w.policy.rules) {
        for (const s of expand(w.policy, rule.from)) {
          for (const d of expand(w.policy, rule.to)) {
            if (s === d) continue;
            for (const a of servers(s)) for (const b of servers(d)) pair(a, b);
          }
        }
      }
      // The candidates of a group peer with each other (the echo), whether or not it carries flows.
      for (const [, c] of r.candidates) {
        for (const a of c) for (const b of c) pair(a, b);
      }
      for (const [name, cfg] of r.configs) {
        const got = cfg.peers.map((p) => p.name).sort();
        const want = [...(expected.get(name) ?? [])].sort();
        if (JSON.stringify(got) !== JSON.stringify(want))
          throw new Error(`${name}: peers ${got.join(',')} but flows need ${want.join(',')}`);
      }
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});

t.test('no two peers of one agent have overlapping AllowedIPs', async (t) => {
  fc.assert(
    fc.property(arbSpec, (spec) => {
      const w = build(spec);
      const r = compilePolicy(w.policy, w.inventory);
      for (const [name, cfg] of r.configs) {
        const all = cfg.peers.flatMap((p) => p.allowedIps.map((x) => ({ peer: p.name, p: P(x) })));
        for (const [i, a] of all.entries()) {
          for (const b of all.slice(i + 1)) {
            if (a.peer !== b.peer && a.p.family === b.p.family && a.p.start <= b.p.end && b.p.start <= a.p.end) {
              throw new Error(`${name}: ${a.peer} ${a.p.text} overlaps ${b.peer} ${b.p.text}`);
            }
          }
        }
      }
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});

t.test('the compiled firewalls agree with evaluate(), and tests built from them pass', async (t) => {
  const flows: Array<[EvalProtocol, number | undefined]> = [
    ['tcp', 443],
    ['udp', 53],
    ['tcp', 8050],
    ['icmp', undefined],
    ['tcp', 22],
  ];
  fc.assert(
    fc.property(arbSpec, (spec) => {
      const w = build(spec);
      const r = compilePolicy(w.policy, w.inventory);
      const tests: PolicyTest[] = [];
      const hosts = w.policy.subnets.flatMap((s) => s.cidrs.map((c) => hostOf(c)));
      for (const src of hosts) {
        for (const dst of hosts) {
          if (src.family !== dst.family || src.start === dst.start) continue;
          // Same subnet: never crosses a box.
          if (w.policy.subnets.some((s) => containsAddr(s.cidrs, src) && containsAddr(s.cidrs, dst))) continue;
          for (const [proto, port] of flows) {
            const fw = firewallAllows(w, r, src, dst, proto, port);
            if (fw === undefined) continue;
            const d = evaluate(w.policy, addressText(src), addressText(dst), proto, port);
            if ((d.decision === 'allow') !== fw) {
              throw new Error(
                `${addressText(src)} -> ${addressText(dst)} ${proto}/${port}: evaluate ${d.decision}, firewall ${fw}`,
              );
            }
            const test: PolicyTest = {
              from: addressText(src),
              to: addressText(dst),
              proto: proto as 'tcp' | 'udp' | 'icmp',
              expect: fw ? 'allow' : 'deny',
            };
            if (port !== undefined) test.port = port;
            tests.push(test);
          }
        }
      }
      const report = runPolicyTests({ ...w.policy, tests });
      if (report.failed > 0)
        throw new Error(
          `tests failed: ${report.results
            .filter((x) => !x.isPassed)
            .map((x) => x.label)
            .join('; ')}`,
        );
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});

t.test('compile is deterministic, whatever the input order', async (t) => {
  fc.assert(
    fc.property(arbSpec, (spec) => {
      const w = build(spec);
      const a = compilePolicy(w.policy, w.inventory);
      const shuffled: Policy = {
        ...w.policy,
        subnets: [...w.policy.subnets].reverse(),
        rules: [...w.policy.rules].reverse(),
        groups: [...w.policy.groups].reverse(),
      };
      const b = compilePolicy(shuffled, { agents: [...w.inventory.agents].reverse() });
      const ha = [...a.configs].map(([n, c]) => `${n}=${c.contentHash}`);
      const hb = [...b.configs].map(([n, c]) => `${n}=${c.contentHash}`);
      if (JSON.stringify(ha) !== JSON.stringify(hb)) throw new Error('hashes differ');
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});

t.test('a prefix is never expanded into single addresses', async (t) => {
  fc.assert(
    fc.property(arbSpec, (spec) => {
      const w = build(spec);
      const r = compilePolicy(w.policy, w.inventory);
      const inputs = w.policy.subnets.flatMap((s) => s.cidrs.map(P));
      const union = mergeParsed(inputs);
      const overlay = new Set(w.inventory.agents.map((a) => `${a.overlayAddress.split('/')[0]}/32`));
      const cidrCount = inputs.length;
      for (const [name, cfg] of r.configs) {
        const lists = [
          ...cfg.peers.map((p) => p.allowedIps),
          cfg.routes,
          ...(cfg.firewall
            ? [...cfg.firewall.outbound, ...cfg.firewall.inbound, ...cfg.firewall.local].flatMap((f) => [
                f.sources,
                f.destinations,
              ])
            : []),
          cfg.firewall?.localPrefixes ?? [],
          cfg.firewall?.masquerade ?? [],
        ];
        for (const list of lists) {
          if (list.length > cidrCount + 1)
            throw new Error(`${name}: a list of ${list.length} prefixes from ${cidrCount} input prefixes`);
          for (const text of list) {
            if (overlay.has(text)) continue;
            const p = P(text);
            // Every output prefix lies inside the union of the input prefixes (merging adjacent subnets
            // may give a shorter prefix) and is no longer than the longest input.
            if (!union.some((i) => i.family === p.family && i.start <= p.start && p.end <= i.end))
              throw new Error(`${name}: ${text} is outside every subnet`);
            if (p.length > Math.max(...inputs.filter((i) => i.family === p.family).map((i) => i.length)))
              throw new Error(`${name}: ${text} is longer than any input prefix`);
          }
        }
      }
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});

const arbOp = fc.oneof(
  fc.record({ kind: fc.constant('health' as const), agent: fc.nat() }),
  fc.record({
    kind: fc.constant('ports' as const),
    rule: fc.nat(),
    ports: fc.subarray([...PORTS], { minLength: 1, maxLength: 2 }),
  }),
  fc.record({ kind: fc.constant('drop-rule' as const), rule: fc.nat() }),
  fc.record({ kind: fc.constant('add-rule' as const), from: fc.nat(), to: fc.nat() }),
  fc.record({ kind: fc.constant('advertise' as const), agent: fc.nat() }),
  fc.record({ kind: fc.constant('endpoint' as const), agent: fc.nat() }),
  fc.record({ kind: fc.constant('via' as const), subnet: fc.nat() }),
  fc.record({ kind: fc.constant('remove-agent' as const), agent: fc.nat() }),
  fc.record({ kind: fc.constant('consent' as const), agent: fc.nat() }),
  fc.record({ kind: fc.constant('move-underlay-endpoint' as const), agent: fc.nat() }),
);

t.test('incremental recompile equals a full compile after every change', async (t) => {
  fc.assert(
    fc.property(arbSpec, fc.array(arbOp, { minLength: 1, maxLength: 6 }), (spec, ops) => {
      const w = build(spec);
      let policy = w.policy;
      let inventory = w.inventory;
      const compiler = new PolicyCompiler();
      let prev = compiler.compile(policy, inventory);
      ops.forEach((op, step) => {
        const agents = inventory.agents;
        if (op.kind === 'health' && agents.length > 0) {
          const a = agents[op.agent % agents.length];
          inventory = { agents: agents.map((x) => (x === a ? { ...x, isHealthy: !x.isHealthy } : x)) };
        } else if (op.kind === 'advertise' && agents.length > 0) {
          const a = agents[op.agent % agents.length];
          inventory = { agents: agents.map((x) => (x === a ? { ...x, advertised: x.advertised.slice(1) } : x)) };
        } else if (op.kind === 'endpoint' && agents.length > 0) {
          const a = agents[op.agent % agents.length];
          inventory = { agents: agents.map((x) => (x === a ? { ...x, endpoint: `moved-${step}:51820` } : x)) };
        } else if (op.kind === 'consent' && agents.length > 0) {
          const a = agents[op.agent % agents.length];
          inventory = { agents: agents.map((x) => (x === a ? { ...x, isRelay: !x.isRelay } : x)) };
        } else if (op.kind === 'move-underlay-endpoint' && agents.length > 0) {
          const a = agents[op.agent % agents.length];
          inventory = {
            agents: agents.map((x) =>
              x === a
                ? {
                    ...x,
                    endpoints: (x.endpoints ?? []).map((e, j) =>
                      j === 0 ? { ...e, endpoint: `10.254.${step}.${op.agent % 250}:51820` } : e,
                    ),
                  }
                : x,
            ),
          };
        } else if (op.kind === 'remove-agent' && agents.length > 0) {
          const a = agents[op.agent % agents.length];
          inventory = { agents: agents.filter((x) => x !== a) };
        } else if (op.kind === 'ports' && policy.rules.length > 0) {
          const target = at(policy.rules, op.rule);
          const v = validatePolicy({
            ...w.raw,
            rules: policy.rules.map((r) => ({
              name: r.name,
              from: r.from,
              to: r.to,
              ports:
                r === target
                  ? op.ports
                  : r.ports.map((p) => (p.first === undefined ? p.protocol : `${p.protocol}/${p.first}-${p.last}`)),
              ticket: 'CHG-1',
            })),
          });
          if (v.policy) policy = v.policy;
        } else if (op.kind === 'drop-rule' && policy.rules.length > 0) {
          const target = at(policy.rules, op.rule);
          policy = { ...policy, rules: policy.rules.filter((r) => r !== target) };
        } else if (op.kind === 'add-rule') {
          const s = policy.subnets;
          const from = at(s, op.from).name;
          const to = at(s, op.to).name;
          if (from !== to)
            policy = {
              ...policy,
              rules: [
                ...policy.rules,
                {
                  name: `added-${step}`,
                  from: [from],
                  to: [to],
                  ports: [{ protocol: 'tcp', first: 443, last: 443 }],
                  probes: [],
                },
              ],
            };
        } else if (op.kind === 'via') {
          // Reverse the via list of one subnet and of every subnet overlapping it (they move together).
          const target = at(policy.subnets, op.subnet);
          const key = target.via.join(',');
          policy = {
            ...policy,
            subnets: policy.subnets.map((s) => (s.via.join(',') === key ? { ...s, via: [...s.via].reverse() } : s)),
          };
        }
        const inc = compiler.update({ policy, inventory });
        const full = compilePolicy(policy, inventory);
        const hi = [...inc.configs].map(([n, c]) => `${n}=${c.contentHash}`);
        const hf = [...full.configs].map(([n, c]) => `${n}=${c.contentHash}`);
        if (JSON.stringify(hi) !== JSON.stringify(hf))
          throw new Error(
            `step ${step} (${op.kind}): incremental differs from full\n${hi.join('\n')}\n--\n${hf.join('\n')}`,
          );
        const wantChanged = [...full.configs]
          .filter(([n, c]) => prev.configs.get(n)?.contentHash !== c.contentHash)
          .map(([n]) => n);
        if (JSON.stringify(inc.changed) !== JSON.stringify(wantChanged))
          throw new Error(`step ${step}: changed ${inc.changed.join(',')} want ${wantChanged.join(',')}`);
        if (JSON.stringify(inc.unserved) !== JSON.stringify(full.unserved))
          throw new Error(`step ${step}: unserved differs`);
        if (JSON.stringify(inc.unconfirmed) !== JSON.stringify(full.unconfirmed))
          throw new Error(`step ${step}: unconfirmed differs`);
        if (JSON.stringify([...inc.servedBy]) !== JSON.stringify([...full.servedBy]))
          throw new Error(`step ${step}: servedBy differs`);
        if (JSON.stringify([...inc.candidates]) !== JSON.stringify([...full.candidates]))
          throw new Error(`step ${step}: candidates differ`);
        if (JSON.stringify(inc.indirectPairs) !== JSON.stringify(full.indirectPairs))
          throw new Error(`step ${step}: indirect pairs differ`);
        prev = inc;
      });
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});

t.test('peers share an underlay or go through a relay whose forwards mirror their endpoints', async (t) => {
  fc.assert(
    fc.property(arbSpec, (spec) => {
      const w = build({ ...spec, isTwoUnderlays: true });
      const r = compilePolicy(w.policy, w.inventory);
      const inv = new Map(w.inventory.agents.map((a) => [a.name as string, a]));
      const ulOf = (n: string): string[] => (inv.get(n)?.endpoints ?? []).map((e) => e.underlay);
      for (const [name, cfg] of r.configs) {
        for (const peer of cfg.peers) {
          const shared = ulOf(name).filter((u) => ulOf(peer.name).includes(u));
          if (shared.length > 0) {
            if (peer.paths.length !== 0)
              throw new Error(`${name} -> ${peer.name}: share ${shared.join(',')} but relayed`);
            const want = inv.get(peer.name)!.endpoints!.find((e) => e.underlay === shared[0])!.endpoint;
            if (peer.endpoint !== want)
              throw new Error(`${name} -> ${peer.name}: endpoint ${peer.endpoint}, want ${want}`);
            continue;
          }
          if (peer.paths.length === 0) throw new Error(`${name} -> ${peer.name}: no shared underlay and no relay`);
          if (peer.endpoint !== peer.paths[0]!.endpoint)
            throw new Error(`${name} -> ${peer.name}: endpoint is not the first path`);
          const back = r.configs.get(peer.name as never)!.peers.find((p) => p.name === name)!;
          const mine = inv.get(name)!.endpoints!;
          const theirs = inv.get(peer.name)!.endpoints!;
          for (const path of peer.paths) {
            if (path.relay === name || path.relay === peer.name)
              throw new Error(`${name} -> ${peer.name}: relayed through one of the pair`);
            const relayCfg = r.configs.get(path.relay as never)!;
            if (relayCfg.peers.some((p) => p.name === name && p.name === peer.name)) throw new Error('impossible');
            // The relay forwards exactly what this box sends to the path's endpoint to the peer, from
            // the address the peer has for this box through the same relay.
            const backPath = back.paths.find((p) => p.relay === path.relay);
            if (!backPath) throw new Error(`${peer.name} has no path back to ${name} through ${path.relay}`);
            const f = relayCfg.firewall!.relay.find((x) => x.listen === path.endpoint && x.fromAgent === name);
            if (!f) throw new Error(`${path.relay} has no forward for ${name} -> ${peer.name} at ${path.endpoint}`);
            if (!mine.some((e) => e.endpoint === f.source))
              throw new Error(`forward source ${f.source} is not ${name}'s endpoint`);
            if (!theirs.some((e) => e.endpoint === f.target))
              throw new Error(`forward target ${f.target} is not ${peer.name}'s endpoint`);
            if (f.snat !== backPath.endpoint)
              throw new Error(
                `forward snat ${f.snat} is not ${peer.name}'s endpoint for ${name} (${backPath.endpoint})`,
              );
          }
        }
        // A relay's listen addresses are its own, and no two forwards share a (source, listen) key.
        const keys = new Set<string>();
        for (const f of cfg.firewall?.relay ?? []) {
          const own = (inv.get(name)!.endpoints ?? []).map((e) => e.endpoint.split(':')[0]);
          if (!own.includes(f.listen.split(':')[0]) || !own.includes(f.snat.split(':')[0]))
            throw new Error(`${name}: forward ${f.listen} / ${f.snat} not on its own addresses`);
          const k = `${f.source} ${f.listen}`;
          if (keys.has(k)) throw new Error(`${name}: two forwards for ${k}`);
          keys.add(k);
        }
      }
    }),
    { numRuns: RUNS },
  );
  t.pass('held');
});
