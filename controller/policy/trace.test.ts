// traceFlow: the policy's decision joined with a deployment (a table of who serves what and which
// peers each box has, as the distributor reports them).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parsePolicy } from './validate.js';
import { traceFlow, type TraceDeployment } from './trace.js';

const policy = parsePolicy(readFileSync(new URL('../../examples/leeds.yaml', import.meta.url), 'utf8')).policy!;

/** Every subnet served by its primary; peers as the Leeds demo has them (social care <-> hospital through the hub). */
function deployment(
  over: Partial<{
    served: Record<string, string | null>;
    peers: Record<string, { endpoint: string; relays: Array<{ relay: string; endpoint: string }> }>;
    problems: Record<string, string>;
    unconfirmed: Record<string, string>;
  }> = {},
): TraceDeployment {
  const served: Record<string, string | null> = Object.fromEntries(policy.subnets.map((s) => [s.name, s.via[0]!]));
  Object.assign(served, over.served ?? {});
  const peers: Record<string, { endpoint: string; relays: Array<{ relay: string; endpoint: string }> }> = {
    'lcc-adult-social-care>lth-sjuh': {
      endpoint: '[2001:db8:2::5]:51901',
      relays: [
        { relay: 'nhs-shared-hub', endpoint: '[2001:db8:2::4]:51900' },
        { relay: 'hub-two', endpoint: '[2001:db8:2::5]:51901' },
      ],
    },
    'gp-chapeltown>lth-sjuh': { endpoint: '192.0.2.1:51820', relays: [] },
    ...(over.peers ?? {}),
  };
  return {
    servedBy: (s) => served[s] ?? null,
    unservedReason: (s) =>
      served[s] === null ? `${policy.subnets.find((x) => x.name === s)!.via.join(' and ')} are down` : null,
    unconfirmedReason: (s) => over.unconfirmed?.[s] ?? null,
    peer: (a, b) => peers[`${a}>${b}`] ?? null,
    pathProblem: (a, b) => over.problems?.[`${a}>${b}`] ?? null,
  };
}

t.test('outcomes', async (t) => {
  const cases: Array<
    [string, string, string, 'tcp' | 'udp' | 'icmp', number | undefined, TraceDeployment, object, RegExp]
  > = [
    [
      'relayed across the gap',
      '10.60.1.10',
      '10.20.1.10',
      'tcp',
      443,
      deployment(),
      {
        outcome: 'passes',
        rule: 'social-care-to-care-records',
        path: {
          kind: 'relay',
          from: 'lcc-adult-social-care',
          to: 'lth-sjuh',
          relay: 'hub-two',
          standbyRelays: ['nhs-shared-hub'],
          endpoint: '[2001:db8:2::5]:51901',
        },
        from: { subnet: 'adult-social-care', zone: 'psn', servedBy: 'lcc-adult-social-care' },
        to: { subnet: 'care-records', zone: 'n3' },
      },
      /^passes: allowed by rule "social-care-to-care-records"; lcc-adult-social-care -> lth-sjuh through relay hub-two \(\[2001:db8:2::5\]:51901\); standby relay nhs-shared-hub$/,
    ],
    [
      'direct',
      '10.30.1.10',
      '10.20.1.10',
      'tcp',
      443,
      deployment(),
      { outcome: 'passes', path: { kind: 'direct', endpoint: '192.0.2.1:51820', relay: null, standbyRelays: [] } },
      /directly to 192\.0\.2\.1:51820$/,
    ],
    [
      'IPv6 end to end',
      'fd00:60:1::10',
      'fd00:20:1::10',
      'tcp',
      443,
      deployment(),
      { outcome: 'passes', from: { subnet: 'adult-social-care' } },
      /^passes/,
    ],
    [
      'a port no rule opens',
      '10.60.1.10',
      '10.20.1.10',
      'tcp',
      22,
      deployment(),
      { outcome: 'denied', decision: 'deny', rule: null, path: null },
      /^denied: no rule allows tcp\/22 .*rule "social-care-to-care-records" allows only tcp\/443, icmp/,
    ],
    [
      'an address in no subnet',
      '192.0.2.77',
      '10.20.1.10',
      'tcp',
      443,
      deployment(),
      { outcome: 'denied', from: { subnet: null, servedBy: null } },
      /is not in any subnet/,
    ],
    [
      'allowed, but the destination is unserved',
      '10.60.1.10',
      '10.20.1.10',
      'tcp',
      443,
      deployment({ served: { 'care-records': null } }),
      { outcome: 'unserved', to: { servedBy: null, unserved: 'lth-sjuh and lth-sjuh-standby are down' } },
      /nobody serves subnet care-records \(10\.20\.1\.10\): lth-sjuh and lth-sjuh-standby are down/,
    ],
    [
      'served by the standby',
      '10.60.1.10',
      '10.20.1.10',
      'tcp',
      443,
      deployment({
        served: { 'care-records': 'lth-sjuh-standby' },
        peers: {
          'lcc-adult-social-care>lth-sjuh-standby': {
            endpoint: '[2001:db8:2::4]:51902',
            relays: [{ relay: 'nhs-shared-hub', endpoint: '[2001:db8:2::4]:51902' }],
          },
        },
      }),
      { outcome: 'passes', to: { servedBy: 'lth-sjuh-standby' }, path: { to: 'lth-sjuh-standby' } },
      /-> lth-sjuh-standby through relay/,
    ],
    [
      "served by its boxes' own choice: passes, and says the controller cannot confirm it",
      '10.30.1.10',
      '10.20.1.10',
      'tcp',
      443,
      deployment({
        unconfirmed: { 'care-records': 'lth-sjuh is unhealthy; lth-sjuh-standby is unhealthy' },
      }),
      {
        outcome: 'passes',
        from: { servedBy: 'gp-chapeltown', unconfirmed: null },
        to: { servedBy: 'lth-sjuh', unconfirmed: 'lth-sjuh is unhealthy; lth-sjuh-standby is unhealthy' },
      },
      /directly to 192\.0\.2\.1:51820; unconfirmed: subnet care-records's boxes choose which serves it, none healthy to the controller \(lth-sjuh is unhealthy; lth-sjuh-standby is unhealthy\)$/,
    ],
    [
      'no path between the boxes',
      '10.60.1.10',
      '10.20.1.10',
      'tcp',
      443,
      deployment({
        peers: { 'lcc-adult-social-care>lth-sjuh': undefined as never },
        problems: { 'lcc-adult-social-care>lth-sjuh': 'no shared underlay and relay nhs-shared-hub is down' },
      }),
      { outcome: 'no-path', path: null },
      /lcc-adult-social-care cannot reach lth-sjuh: no shared underlay and relay nhs-shared-hub is down$/,
    ],
    [
      'not pushed yet',
      '10.30.1.10',
      '10.20.1.10',
      'tcp',
      443,
      deployment({ peers: { 'gp-chapeltown>lth-sjuh': undefined as never } }),
      { outcome: 'no-path' },
      /gp-chapeltown has no peer lth-sjuh in its current config/,
    ],
    [
      'one box serves both ends',
      '10.40.1.10',
      '10.41.1.10',
      'icmp',
      undefined,
      deployment(),
      { outcome: 'denied' },
      /^denied/,
    ],
    [
      'LAN to LAN on the hub',
      '10.41.1.10',
      '10.40.1.10',
      'icmp',
      undefined,
      deployment(),
      { outcome: 'passes', path: { kind: 'same-box', from: 'nhs-shared-hub', to: 'nhs-shared-hub' } },
      /nhs-shared-hub serves both subnets/,
    ],
    [
      'the most specific subnet holds the address',
      '10.60.1.10',
      '10.20.2.5',
      'udp',
      53,
      deployment(),
      { outcome: 'denied', to: { subnet: 'lth-dns' } },
      /^denied/,
    ],
  ];
  for (const [name, from, to, proto, port, dep, expected, summary] of cases) {
    const r = traceFlow(policy, from, to, proto, port, dep);
    t.match(r, expected, name);
    t.match(r.summary, summary, `${name}: summary`);
  }
});

t.test("bad input is the caller's error", async (t) => {
  t.throws(() => traceFlow(policy, 'gp-chapeltown-lan', '10.20.1.10', 'tcp', 443, deployment()), {
    code: 'invalid_request',
    message: /"gp-chapeltown-lan" is not an IP address/,
  });
  t.throws(() => traceFlow(policy, 'fd00:60:1::10', '10.20.1.10', 'tcp', 443, deployment()), {
    code: 'invalid_request',
    message: /cannot mix IPv6 and IPv4/,
  });
});
