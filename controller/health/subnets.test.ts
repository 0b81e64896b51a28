import t from 'tap';
import { evaluateHealth } from './evaluate.js';
import { agentInput, T0 } from './health.fixture.js';
import { subnetIssues } from './subnets.js';

const NOW = T0 + 600_000;
const opts = { reportIntervalMs: 10_000 };

t.test('unserved and unconfirmed subnets as health subjects', async (t) => {
  const unserved = [
    { subnet: 'care', reason: 'cc-edge is unhealthy' },
    { subnet: 'gp', reason: 'gp-edge has not enrolled', isAwaitingEnrolment: true },
  ];
  const unconfirmed = [{ subnet: 'civic', candidates: ['civ-a', 'civ-b'], reason: 'no candidate healthy' }];
  t.same(subnetIssues(unserved, unconfirmed), [
    { subnet: 'care', state: 'down', reason: 'unserved: cc-edge is unhealthy' },
    {
      subnet: 'civic',
      state: 'degraded',
      reason:
        "served by its boxes' own choice among civ-a, civ-b, none healthy to the controller: no candidate healthy",
    },
  ]);
  t.same(
    subnetIssues(unserved, [], { withAwaiting: true }).map((i) => [i.subnet, i.state]),
    [
      ['care', 'down'],
      ['gp', 'unknown'],
    ],
    'a subnet awaiting its box is unknown, and only listed when asked',
  );
});

t.test('the overall state counts them (as crosslink check does)', async (t) => {
  const fleet = [agentInput('a', NOW), agentInput('b', NOW)];
  const clean = evaluateHealth(fleet, NOW, opts);
  t.equal(clean.state, 'ok', 'every agent ok');
  const down = evaluateHealth(fleet, NOW, opts, clean, [{ subnet: 'care', state: 'down', reason: 'unserved: x' }]);
  t.equal(down.state, 'down');
  t.match(down.reason, /^1 subnet down$/);
  const degraded = evaluateHealth(fleet, NOW, opts, down, [{ subnet: 'c', state: 'degraded', reason: 'y' }]);
  t.equal(degraded.state, 'degraded');
  t.equal(evaluateHealth(fleet, NOW, opts, degraded, []).state, 'ok', 'served again: ok again');
  t.equal(
    evaluateHealth([], NOW, opts, null, [{ subnet: 'c', state: 'down', reason: 'z' }]).state,
    'unknown',
    'no agents: unknown',
  );
});
