// What both controller benchmarks (one controller, and `--replicas N` on PostgreSQL) set up: N
// enrolled agents (credential "bench-<i>") and a pairwise policy whose change affects a known set.
import { createHash } from 'node:crypto';
import type { Store } from '../controller/store/store.js';
import { agentRecord } from '../controller/store/store.contract.js';

export const agentName = (i: number) => `ag-${String(i).padStart(5, '0')}`;
export const agentCidr = (i: number) => `10.${(i >> 8) & 255}.${i & 255}.0/24`;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const actor = { name: 'bench', role: 'admin' as const, address: '' };

/** Pairs (2k, 2k+1): one rule each, so every agent has exactly one peer. `changedPairs` get tcp/8443
 *  too, so a change of it affects agents 0 .. 2*changedPairs-1 and no other. `isCompact`: the same
 *  rules with short names and no `agents` section (zones sit on the subnets), so that 10,000 agents'
 *  policy fits the REST API's 1 MiB request body (PUT /v1/policy). */
export function policyDocument(n: number, changedPairs: number, isCompact = false): string {
  const agents: Record<string, unknown> = {};
  const subnets: Record<string, unknown> = {};
  const rules: unknown[] = [];
  const subnet = (i: number) => (isCompact ? `s${i}` : `s-${agentName(i)}`);
  for (let i = 0; i < n; i++) {
    if (!isCompact) agents[agentName(i)] = { zones: [i % 2 ? 'psn' : 'n3'] };
    subnets[subnet(i)] = { cidr: agentCidr(i), zone: i % 2 ? 'psn' : 'n3', via: [agentName(i)] };
  }
  for (let k = 0; k < n / 2; k++) {
    rules.push({
      name: isCompact ? `r${k}` : `r-${k}`,
      from: subnet(2 * k),
      to: subnet(2 * k + 1),
      ports: k < changedPairs ? ['tcp/443', 'tcp/8443'] : ['tcp/443'],
    });
  }
  return JSON.stringify({
    version: 1,
    zones: { n3: { description: 'NHS' }, psn: { description: 'council' } },
    ...(isCompact ? {} : { agents }),
    subnets,
    rules,
  });
}

/** Enrols agents 0..n-1 straight into the store (as Enroll would) and stores the first policy. */
export async function seedBenchStore(store: Store, n: number, isCompact = false): Promise<void> {
  for (let i = 0; i < n; i++) {
    const name = agentName(i);
    await store.enrollAgent(
      agentRecord(name, {
        id: `id-${i}`,
        publicKey: createHash('sha256').update(name).digest('base64'),
        endpoint: `192.0.2.${(i % 250) + 1}:${51820 + (i >> 8)}`,
        overlayAddress: `100.${64 + (((i + 1) >> 16) & 63)}.${((i + 1) >> 8) & 255}.${(i + 1) & 255}/10`,
        advertised: [agentCidr(i)],
        credentialHash: sha(`bench-${i}`),
        enrolledAtMs: Date.now(),
      }),
      '',
      { actor, action: 'agent.enroll', target: `agent/${name}`, before: null, after: null },
    );
  }
  await store.appendPolicy(
    {
      document: policyDocument(n, 0, isCompact),
      expectedVersion: 0,
      createdBy: 'bench',
      comment: '',
      atMs: Date.now(),
    },
    { actor, action: 'policy.put', target: 'policy', before: null, after: null },
  );
}
