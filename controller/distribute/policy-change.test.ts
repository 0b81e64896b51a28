// onPolicyChange: told once per new current version (the web view's `policy` event), not for the
// version loaded at start, a re-apply of the same version, or an older one arriving late.
import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { systemClock } from '../../lib/clock.js';
import { parsePolicy } from '../policy/index.js';
import { MemoryStore } from '../store/memory.js';
import { Distributor } from './distributor.js';

const POLICY = `version: 1
zones: { n3: {}, psn: {} }
agents:
  a: { zones: [n3] }
  b: { zones: [psn] }
subnets:
  records: { cidr: 10.20.1.0/24, zone: n3, via: [a] }
  social: { cidr: 10.60.1.0/24, zone: psn, via: [b] }
rules:
  - { name: social-to-records, from: social, to: records, ports: [tcp/443] }
`;

t.test('onPolicyChange: each new version once', async (t) => {
  const versions: number[] = [];
  const d = new Distributor({
    store: new MemoryStore(),
    log: silentLogger(),
    clock: systemClock,
    onPolicyChange: (v) => versions.push(v),
  });
  await d.start();
  t.teardown(() => d.stop());
  const policy = parsePolicy(POLICY).policy!;
  await d.setPolicy(policy, 1);
  await d.setPolicy(policy, 1);
  await d.setPolicy(policy, 3);
  await d.setPolicy(policy, 2); // an older version arriving late is not applied
  t.same(versions, [1, 3]);
  t.equal(d.currentPolicy()?.version, 3);
});
