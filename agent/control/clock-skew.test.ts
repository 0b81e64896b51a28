import t from 'tap';
import { ClockSkew } from './clock-skew.js';

const NOW = 1_767_225_600_000;

t.test('within the bound the box trusts its clock; beyond it the skew is applied, in seconds', async (t) => {
  const c = new ClockSkew();
  t.equal(c.observe(NOW, NOW + 300), false, 'transit time: no change');
  t.equal(c.measuredMs, 300);
  t.equal(c.isSkewed, false);
  t.equal(c.observe(NOW, NOW - 62_400), true, 'a clock 62.4 s behind');
  t.equal(c.appliedMs, -62_000);
  t.equal(c.isSkewed, true);
  t.equal(c.observe(NOW, NOW - 62_700), false, 'a few hundred ms of jitter re-renders nothing');
  t.equal(c.observe(NOW, NOW - 64_000), true, 'a second or more does');
  t.equal(c.appliedMs, -64_000);
  t.equal(c.observe(NOW, NOW + 3_500), true, 'back under the bound (by more than the hysteresis)');
  t.equal(c.appliedMs, 0);
  t.equal(c.observe(NOW, NOW + 5_200), true, 'just over it again');
  t.equal(c.observe(NOW, NOW + 4_800), false, 'just under it: stays skewed (no flapping at the bound)');
  t.equal(c.observe(0, NOW), false, 'a heartbeat without a time is ignored');
});

t.test('a box 60 s behind the controller reports it and closes a rule 60 s early on its clock', async (t) => {
  const { desiredState } = await import('../reconcile/desired.js');
  const { config, SETTINGS } = await import('../reconcile/reconcile.fixture.js');
  const { renderFirewall } = await import('../host/firewall-render.js');
  const { ruleWindowsOf } = await import('../health/rule-windows.js');
  const { create } = await import('@bufbuild/protobuf');
  const { FirewallSchema, FlowRuleSchema } = await import('../../proto/gen/crosslink/v1/agent_pb.js');
  const endMs = NOW + 3_600_000;
  const cfg = config(1, {
    firewall: create(FirewallSchema, {
      outbound: [
        create(FlowRuleSchema, {
          rule: 'contractor',
          sources: ['10.1.0.0/24'],
          destinations: ['10.2.0.0/24'],
          protocol: 'tcp',
          notAfterUnixMs: BigInt(endMs),
        }),
      ],
    }),
  });
  const skew = new ClockSkew();
  // The heartbeat says the controller's clock reads NOW when this box's reads NOW - 60 s.
  skew.observe(NOW, NOW - 60_000);
  t.equal(skew.isSkewed, true, 'reported as skewed');
  t.equal(skew.measuredMs, -60_000);
  const trusting = desiredState(cfg, SETTINGS, renderFirewall).firewall.ruleset;
  const safe = desiredState(cfg, { ...SETTINGS, clockSkewMs: skew.appliedMs }, renderFirewall).firewall.ruleset;
  t.match(trusting, `meta time >= ${endMs / 1000} counter`, 'on its own clock: at the end');
  t.match(safe, `meta time >= ${endMs / 1000 - 60} counter`, 'skewed: when the controller clock reaches it');
  t.notMatch(safe, `meta time >= ${endMs / 1000} counter`);
  const [w] = ruleWindowsOf(cfg, skew.appliedMs, NOW - 60_000);
  t.equal(w?.notAfter, new Date(endMs - 60_000).toISOString(), 'status shows the end on the box clock');
  t.equal(w?.secondsToExpiry, 3_600, 'an hour to go, as the controller sees it');
  // A box ahead of the controller already closes on its own clock, which comes first.
  skew.observe(NOW, NOW + 60_000);
  const ahead = desiredState(cfg, { ...SETTINGS, clockSkewMs: skew.appliedMs }, renderFirewall).firewall.ruleset;
  t.match(ahead, `meta time >= ${endMs / 1000} counter`);
});
