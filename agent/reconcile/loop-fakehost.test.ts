// The reconciler against the host team's FakeHost (which passes the same contract suite as the
// Linux adapters) and the real nft renderer: idempotency, transitions, drift, partial failure.
import t from 'tap';
import fc from 'fast-check';
import { silentLogger } from '../../lib/logger.js';
import { FakeHost, FAKE_WRITE_OPS } from '../host/fake-host.js';
import { renderFirewall } from '../host/firewall-render.js';
import { publicKeyOf } from '../state.js';
import { Reconciler } from './loop.js';
import { plan } from './plan.js';
import { teardown } from './teardown.js';
import { NAMED, SETTINGS } from './reconcile.fixture.js';

const PRIVATE_KEY = Buffer.alloc(32, 0x48).toString('base64');
const settings = { ...SETTINGS, publicKey: publicKeyOf(PRIVATE_KEY) };

function setup() {
  const host = new FakeHost({ readPrivateKey: async () => `${PRIVATE_KEY}\n` });
  const r = new Reconciler({
    host,
    clock: { nowMs: () => 0 },
    log: silentLogger(),
    settings,
    renderFirewall,
    random: () => 0.5,
  });
  return { host, r };
}

async function stepsLeft(r: Reconciler): Promise<number> {
  return plan(r.desiredState!, await r.observe(r.desiredState!)).length;
}

function writes(host: FakeHost): number {
  return FAKE_WRITE_OPS.reduce((n, op) => n + (host.calls.get(op) ?? 0), 0);
}

t.test('idempotency with the FakeHost and the real renderer', async (t) => {
  for (const [name, cfg] of Object.entries(NAMED)) {
    const { host, r } = setup();
    r.setDesired(cfg);
    t.same((await r.reconcile())!.errors, [], `${name}: applied`);
    t.equal(await stepsLeft(r), 0, `${name}: nothing left`);
    const before = writes(host);
    t.same((await r.reconcile())!.steps, [], `${name}: no steps`);
    t.equal(writes(host), before, `${name}: no write calls`);
    t.equal(host.firewallText(), r.desiredState!.firewall.ruleset, `${name}: firewall as rendered`);
  }
});

t.test('random transitions (seeded) end equal to the desired state', async (t) => {
  const names = [...Object.keys(NAMED), 'tornDown'];
  await fc.assert(
    fc.asyncProperty(fc.array(fc.constantFrom(...names), { minLength: 2, maxLength: 10 }), async (seq) => {
      const { host, r } = setup();
      let gen = 0;
      for (const name of seq) {
        if (name === 'tornDown') {
          if ((await teardown(host, settings.interfaceName)).length !== 0) return false;
          if (host.firewallText() !== null || host.allRoutes().some((x) => x.proto === 147)) return false;
          continue;
        }
        r.setDesired({ ...NAMED[name]!, generation: BigInt(++gen) });
        if ((await r.reconcile())!.errors.length !== 0) return false;
        if ((await stepsLeft(r)) !== 0) return false;
        const w = writes(host);
        await r.reconcile();
        if (writes(host) !== w) return false;
      }
      return true;
    }),
    { seed: 7, numRuns: 40 },
  );
  t.pass('all sequences converged');
});

t.test('drift by hand is put right', async (t) => {
  const { host, r } = setup();
  r.setDesired(NAMED.peersRoutesFirewall!);
  await r.reconcile();
  host.tamperFirewall();
  host.deleteRouteByHand('172.16.5.0/24');
  let out = await r.reconcile('resync');
  t.same(
    out!.steps.map((s) => s.kind),
    ['firewall.replace', 'routes'],
  );
  t.match(out!.steps[0], { reason: 'drift' });
  t.equal(await stepsLeft(r), 0);
  host.deleteFirewallTable();
  out = await r.reconcile('resync');
  t.match(out!.steps, [{ kind: 'firewall.replace', reason: 'missing' }]);
  host.deleteLink(settings.interfaceName);
  out = await r.reconcile('resync');
  t.same(out!.errors, []);
  t.equal(await stepsLeft(r), 0);
});

t.test('partial failure with the FakeHost: reported like the real command, retried', async (t) => {
  const { host, r } = setup();
  host.failNext('routes.apply', { exitCode: 2, stderr: 'RTNETLINK answers: Operation not permitted\n' });
  r.setDesired(NAMED.peersRoutesFirewall!);
  const out = await r.reconcile();
  t.equal(out!.errors.length, 1);
  t.match(out!.errors[0], { step: 'routes', command: /^ip .*-batch/, exitCode: 2, stderr: /Operation not permitted/ });
  t.equal(host.firewallText(), r.desiredState!.firewall.ruleset, 'firewall applied anyway');
  const again = await r.reconcile('retry');
  t.same(again!.errors, []);
  t.same(
    again!.steps.map((s) => s.kind),
    ['routes'],
    'only what failed is redone',
  );
  t.equal(r.status.generationApplied, 4n);
});
