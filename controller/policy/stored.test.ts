import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { arbSpec, build } from './property.fixture.js';
import { policyOfVersion, readStoredPolicy, storedPolicyJson } from './stored.js';
import { parsePolicy } from './validate.js';

/** The release the tests store under. */
const R = '1.2.3';
const leeds = readFileSync(new URL('../../examples/leeds.yaml', import.meta.url), 'utf8');

t.test('the validated form reads back equal to the policy, for any policy', async (t) => {
  const example = parsePolicy(leeds).policy!;
  t.same(readStoredPolicy(storedPolicyJson(example, R), R), example, 'the example policy');
  fc.assert(
    fc.property(arbSpec, (spec) => {
      const { policy } = build(spec);
      t.strictSame(readStoredPolicy(storedPolicyJson(policy, R), R), JSON.parse(JSON.stringify(policy)));
      return JSON.stringify(readStoredPolicy(storedPolicyJson(policy, R), R)) === JSON.stringify(policy);
    }),
    { numRuns: 100 },
  );
});

t.test('anything else is null, so the caller parses the document', async (t) => {
  const policy = parsePolicy(leeds).policy!;
  t.equal(readStoredPolicy('', R), null, 'none stored');
  t.equal(readStoredPolicy(storedPolicyJson(policy, '1.0.0'), '1.1.0'), null, 'another release wrote it');
  t.equal(readStoredPolicy('{"release":', R), null, 'cut short');
  t.equal(readStoredPolicy('[1]', R), null);
  const noRules = JSON.parse(storedPolicyJson(policy, R)) as { policy: Record<string, unknown> };
  delete noRules.policy.rules;
  t.equal(readStoredPolicy(JSON.stringify(noRules), R), null, 'a section missing');
});

t.test('policyOfVersion: the stored form without asking for agents, else the document parsed', async (t) => {
  const policy = parsePolicy(leeds).policy!;
  let asked = 0;
  const agents = () => {
    asked++;
    return [];
  };
  const fromStored = await policyOfVersion(
    { document: 'not: [valid', validated: storedPolicyJson(policy, R) },
    R,
    agents,
  );
  t.same(fromStored, { policy, isParsed: false });
  t.equal(asked, 0);
  const parsed = await policyOfVersion({ document: leeds, validated: '' }, R, agents);
  t.same(parsed, { policy, isParsed: true });
  t.equal(asked, 1);
  const bad = await policyOfVersion(
    { document: 'version: 1\nsubnets: { s: { cidr: 10.0.0.0/24, via: [ghost] } }\n', validated: '' },
    R,
    () => ['box'],
  );
  t.match(bad, { isParsed: true, errors: [{ message: /missing "zone"/ }, { message: /unknown agent "ghost"/ }] });
});
