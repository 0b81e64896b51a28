// Child process of bench/agent-memory.ts, run inside the box's namespace: the real controller's
// agent service (startTestController: HTTPS/HTTP2, Connect, the real distributor and compiler, a
// memory store) with `peers` other agents already enrolled, and a policy that gives the agent under
// test, "box-a", exactly `peers` peers. Each other agent serves 5 /24s and box-a's LAN may reach
// each of them on two ports: 1,000 peers = 5,000 routes and 10,000 tuples, the scale of
// `npm run bench:agent`. Tells the parent its join token over IPC, then serves until killed.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { generateWgPrivateKey, wgPublicKey } from '../agent/host/wg-key.js';
import { MemoryStore } from '../controller/store/memory.js';
import { agentRecord } from '../controller/store/store.contract.js';
import { startTestController } from '../controller/rpc/test-controller.fixture.js';

const peers = Number(process.env.BENCH_PEERS ?? 10);
const BOX = 'box-a';
export const BOX_LAN = '10.10.0.0/24';
const actor = { name: 'bench', role: 'admin' as const, address: '' };
const name = (i: number) => `peer-${String(i).padStart(4, '0')}`;
/** Peer i's five LAN prefixes (10.128.0.0/24 and up), every other /24 (chosen when the compiler
 *  still wanted adjacent ones advertised merged; it no longer does, and the figures were taken so). */
const lans = (i: number) =>
  Array.from({ length: 5 }, (_, m) => (i * 5 + m) * 2).map((k) => `10.${128 + (k >> 8)}.${k & 255}.0/24`);

const store = new MemoryStore();
for (let i = 0; i < peers; i++) {
  await store.enrollAgent(
    agentRecord(name(i), {
      id: `id-${i}`,
      // A real X25519 key: wireguard-go's `wg syncconf` of 1,000 hashes-as-keys ran past 60 s.
      publicKey: wgPublicKey(generateWgPrivateKey()),
      // TEST-NET-2 endpoints: nobody answers; the box blackholes them (bench/agent-memory.ts).
      endpoint: `198.51.100.${(i % 250) + 1}:${51820 + (i >> 8)}`,
      overlayAddress: `100.64.${(i + 10) >> 8}.${(i + 10) & 255}/10`,
      advertised: lans(i),
      credentialHash: createHash('sha256').update(`bench-${i}`).digest('hex'),
      enrolledAtMs: Date.now(),
    }),
    '',
    { actor, action: 'agent.enroll', target: `agent/${name(i)}`, before: null, after: null },
  );
}
const agents: Record<string, unknown> = { [BOX]: { zones: ['n3'] } };
const subnets: Record<string, unknown> = { 'box-a-lan': { cidr: [BOX_LAN], zone: 'n3', via: [BOX] } };
const rules: unknown[] = [];
for (let i = 0; i < peers; i++) {
  agents[name(i)] = { zones: ['psn'] };
  subnets[`s-${name(i)}`] = { cidr: lans(i), zone: 'psn', via: [name(i)] };
  rules.push({ name: `r-${i}`, from: 'box-a-lan', to: `s-${name(i)}`, ports: ['tcp/443', 'tcp/8443'] });
}
const document = JSON.stringify({
  version: 1,
  zones: { n3: { description: 'NHS' }, psn: { description: 'council' } },
  agents,
  subnets,
  rules,
});
await store.appendPolicy(
  { document, expectedVersion: 0, createdBy: 'bench', comment: '', atMs: Date.now() },
  { actor, action: 'policy.put', target: 'policy', before: null, after: null },
);
// Its TLS identity in the bench's work directory (BENCH_DATA_DIR), removed with it: the bench
// ends this process with SIGKILL, so a directory of the fixture's own would be left behind.
const dataDir = process.env['BENCH_DATA_DIR'];
if (dataDir) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
const ctl = await startTestController({ store, ...(dataDir ? { dataDir } : {}) });
const token = await ctl.joinToken(BOX);
process.send!({ type: 'ready', join: token.text });
process.on('disconnect', () => {
  void ctl.close().finally(() => process.exit(0));
});
