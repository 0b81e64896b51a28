// Failover through the distributor: serving health moves a subnet to its standby and back, each
// move is reported once as a handover, and servingAssignments() shows who serves what.
import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { systemClock } from '../../lib/clock.js';
import { parsePolicy } from '../policy/index.js';
import { MemoryStore } from '../store/memory.js';
import type { AgentRecord } from '../store/store.js';
import { Distributor, type Handover } from './distributor.js';

const POLICY = `version: 1
zones: { n3: {}, psn: {} }
agents:
  primary: { zones: [n3] }
  standby: { zones: [n3] }
  council: { zones: [psn] }
subnets:
  records: { cidr: 10.20.1.0/24, zone: n3, via: [primary, standby] }
  social: { cidr: 10.60.1.0/24, zone: psn, via: [council] }
rules:
  - { name: social-to-records, from: social, to: records, ports: [tcp/443] }
`;

const KEYS = [
  'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
  'BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=',
  'CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA=',
];

function agent(name: string, i: number, advertised: string[]): AgentRecord {
  return {
    id: name,
    name,
    publicKey: KEYS[i]!,
    endpoint: `172.31.${i + 1}.2:51820`,
    endpoints: [],
    isRelay: false,
    overlayAddress: `100.64.0.${i + 1}/10`,
    advertised,
    credentialHash: `h${i}`,
    agentVersion: 't',
    protocolVersion: 1,
    enrolledAtMs: 0,
    revokedAtMs: null,
    desiredGeneration: 0,
    desiredHash: '',
    appliedGeneration: 0,
    lastReportAtMs: null,
    lastReport: null,
  };
}

const ENROL = {
  actor: { name: 't', role: 'system' as const, address: '' },
  action: 'agent.enroll',
  target: 'x',
  before: null,
  after: null,
};

/** A distributor over a memory store with `primary`, `standby` and `council` enrolled (each
 *  advertising its subnet), recording handovers. */
async function threeBoxes(): Promise<{ d: Distributor; handovers: Handover[][] }> {
  const store = new MemoryStore();
  await store.enrollAgent(agent('primary', 0, ['10.20.1.0/24']), 'none', ENROL);
  await store.enrollAgent(agent('standby', 1, ['10.20.1.0/24']), 'none', ENROL);
  await store.enrollAgent(agent('council', 2, ['10.60.1.0/24']), 'none', ENROL);
  const handovers: Handover[][] = [];
  const d = new Distributor({
    store,
    log: silentLogger(),
    clock: systemClock,
    onHandover: (h) => handovers.push([...h]),
  });
  await d.start();
  return { d, handovers };
}

t.test('serving health moves a subnet to the standby and back, one handover each way', async (t) => {
  const { d, handovers } = await threeBoxes();
  const parsed = parsePolicy(POLICY);
  t.ok(parsed.policy, JSON.stringify(parsed.errors));
  await d.setPolicy(parsed.policy!, 1);
  t.same(
    handovers,
    [
      [
        {
          subnet: 'records',
          from: '',
          to: 'primary',
          role: 'primary',
          fromRole: '',
          unhealthy: [],
          isUnconfirmed: false,
          wasUnconfirmed: false,
        },
        {
          subnet: 'social',
          from: '',
          to: 'council',
          role: 'primary',
          fromRole: '',
          unhealthy: [],
          isUnconfirmed: false,
          wasUnconfirmed: false,
        },
      ],
    ],
    'the policy arriving hands each subnet to its primary',
  );
  handovers.length = 0;
  const serving = () =>
    d
      .servingAssignments()
      .filter((a) => a.subnet === 'records')
      .map((a) => `${a.agent}/${a.role}=${a.isServing ? 1 : 0}`);
  t.same(serving(), ['primary/primary=1', 'standby/standby=0']);

  await d.setAgentHealth('primary', false);
  t.same(handovers, [
    [
      {
        subnet: 'records',
        from: 'primary',
        to: 'standby',
        role: 'standby',
        fromRole: 'primary',
        unhealthy: ['primary'],
        isUnconfirmed: false,
        wasUnconfirmed: false,
      },
    ],
  ]);
  t.same(serving(), ['primary/primary=0', 'standby/standby=1']);
  t.same(
    d.currentConfig('standby')!.localSubnets.map((s) => s.name),
    ['records'],
  );
  // The primary keeps the subnet as a candidate (edge failover), last in the serving group.
  t.same(
    d.currentConfig('primary')!.localSubnets.map((s) => s.name),
    ['records'],
  );
  t.same(
    d.currentConfig('council')!.servingGroups.map((g) => [g.name, g.candidates]),
    [['records', ['standby', 'primary']]],
    'the council box is told the standby goes first now',
  );

  handovers.length = 0;
  await d.setAgentHealth('primary', false);
  t.same(handovers, [], 'no change, no handover');
  await d.setAgentHealth('primary', true);
  t.same(handovers, [
    [
      {
        subnet: 'records',
        from: 'standby',
        to: 'primary',
        role: 'primary',
        fromRole: 'standby',
        unhealthy: [],
        isUnconfirmed: false,
        wasUnconfirmed: false,
      },
    ],
  ]);
  t.same(serving(), ['primary/primary=1', 'standby/standby=0']);
  await d.stop();
});

t.test(
  'unservedSubnets(): each subnet nobody serves, why, and whether its boxes have merely not enrolled',
  async (t) => {
    const store = new MemoryStore();
    // A dual-stack subnet whose box advertises only the IPv4 prefix; `council` never enrols.
    await store.enrollAgent(agent('primary', 0, ['10.20.1.0/24']), 'none', ENROL);
    const d = new Distributor({ store, log: silentLogger(), clock: systemClock });
    await d.start();
    const parsed = parsePolicy(
      POLICY.replace(
        'cidr: 10.20.1.0/24, zone: n3, via: [primary, standby]',
        'cidr: [10.20.1.0/24, "fd20:8::/64"], zone: n3, via: [primary]',
      ),
    );
    t.ok(parsed.policy, JSON.stringify(parsed.errors));
    await d.setPolicy(parsed.policy!, 1);
    t.same(d.unservedSubnets(), [
      { subnet: 'records', reason: 'primary does not advertise fd20:8::/64', isAwaitingEnrolment: false },
      { subnet: 'social', reason: 'council is not enrolled', isAwaitingEnrolment: true },
    ]);
    await d.stop();
  },
);

t.test('a handover names only unhealthy boxes of that subnet', async (t) => {
  const { d, handovers } = await threeBoxes();
  t.teardown(() => d.stop());
  await d.setPolicy(parsePolicy(POLICY).policy!, 1);
  await d.setAgentHealth('council', false);
  handovers.length = 0;
  await d.setAgentHealth('primary', false);
  t.same(
    handovers,
    [
      [
        {
          subnet: 'records',
          from: 'primary',
          to: 'standby',
          role: 'standby',
          fromRole: 'primary',
          unhealthy: ['primary'],
          isUnconfirmed: false,
          wasUnconfirmed: false,
        },
      ],
    ],
    'council, unhealthy too, is not named for records',
  );
});

t.test('no box healthy to the controller: the group stays, primary first, reported unconfirmed', async (t) => {
  const { d, handovers } = await threeBoxes();
  t.teardown(() => d.stop());
  await d.setPolicy(parsePolicy(POLICY).policy!, 1);
  await d.setAgentHealth('primary', false);
  handovers.length = 0;
  // The controller loses the standby too (say it is cut off from both; they still reach each other).
  await d.setAgentHealth('standby', false);
  t.same(
    d.currentConfig('council')!.servingGroups.map((g) => [g.name, g.candidates]),
    [['records', ['primary', 'standby']]],
    'the sending box keeps both candidates, in via order',
  );
  for (const name of ['primary', 'standby'])
    t.same(
      d.currentConfig(name)!.localSubnets.map((s) => s.name),
      ['records'],
      `${name} keeps the subnet`,
    );
  t.same(d.unservedSubnets(), [], 'not unserved');
  t.same(d.unconfirmedSubnets(), [
    { subnet: 'records', candidates: ['primary', 'standby'], reason: 'primary is unhealthy; standby is unhealthy' },
  ]);
  t.equal(d.servingAgent('records'), 'primary', 'the controller names the first candidate');
  t.same(handovers, [
    [
      {
        subnet: 'records',
        from: 'standby',
        to: 'primary',
        role: 'primary',
        fromRole: 'standby',
        unhealthy: ['primary', 'standby'],
        isUnconfirmed: true,
        wasUnconfirmed: false,
      },
    ],
  ]);
  // The primary healthy again: same server, now confirmed; reported once.
  handovers.length = 0;
  await d.setAgentHealth('primary', true);
  t.same(d.unconfirmedSubnets(), []);
  t.same(handovers, [
    [
      {
        subnet: 'records',
        from: 'primary',
        to: 'primary',
        role: 'primary',
        fromRole: 'primary',
        unhealthy: ['standby'],
        isUnconfirmed: false,
        wasUnconfirmed: true,
      },
    ],
  ]);
});

// Replicas (LISTEN/NOTIFY): another replica's newer version can reach the queue before this one's
// own older PUT; the older must not replace it.
t.test('an older policy version never replaces a newer one', async (t) => {
  const { d } = await threeBoxes();
  t.teardown(() => d.stop());
  const v1 = parsePolicy(POLICY).policy!;
  const v2 = parsePolicy(POLICY.replace('tcp/443', 'tcp/8443')).policy!;
  await d.setPolicy(v2, 7);
  await d.setPolicy(v1, 6);
  t.equal(d.currentPolicy()?.version, 7, 'version 7 stays');
  t.equal(d.currentPolicy()?.policy, v2);
  await d.setPolicy(v1, 7);
  t.equal(d.currentPolicy()?.policy, v1, 'the same version again is applied (a re-read)');
});

t.test('health changes made together share one recompile; a flip and back before it is no change', async (t) => {
  const { d, handovers } = await threeBoxes();
  await d.setPolicy(parsePolicy(POLICY).policy!, 1);
  handovers.length = 0;
  // A leader's evaluation flipping many agents at once: one compile, one batch of handovers.
  await Promise.all([d.setAgentHealth('primary', false), d.setAgentHealth('council', false)]);
  t.equal(handovers.length, 1, 'one recompile for both changes');
  t.same(
    handovers[0]!.map((h) => [h.subnet, h.to]),
    [
      ['records', 'standby'],
      ['social', ''],
    ],
  );
  handovers.length = 0;
  await Promise.all([d.setAgentHealth('primary', true), d.setAgentHealth('primary', false)]);
  t.equal(handovers.length, 0, 'back and forth before the recompile ran: nothing moves');
  t.same(
    d
      .servingAssignments()
      .filter((a) => a.isServing)
      .map((a) => a.agent),
    ['standby'],
  );
});
