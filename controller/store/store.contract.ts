// The storage contract: every Store adapter must pass these. Each subtest gets a fresh, migrated store.
import type { Test } from 'tap';
import { verifyAuditChain, GENESIS_HASH } from './audit-chain.js';
import type { AgentRecord, ApiTokenRecord, AuditInput, JoinTokenRecord, Store } from './store.js';

export type StoreFactory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const actor = { name: 'alice', role: 'admin' as const, address: '192.0.2.1' };
const audit = (action: string, target = 'x', before: unknown = null, after: unknown = null): AuditInput => ({
  actor,
  action,
  target,
  before,
  after,
});

export function agentRecord(name: string, over: Partial<AgentRecord> = {}): AgentRecord {
  return {
    id: `ag-${name}`,
    name,
    publicKey: 'k'.repeat(43) + '=',
    endpoint: '198.51.100.1:51820',
    endpoints: [],
    isRelay: false,
    overlayAddress: '100.64.0.2/10',
    advertised: ['10.20.0.0/16'],
    credentialHash: `cred-${name}`,
    agentVersion: '0.1.0',
    protocolVersion: 1,
    enrolledAtMs: 1000,
    revokedAtMs: null,
    desiredGeneration: 0,
    desiredHash: '',
    appliedGeneration: 0,
    lastReportAtMs: null,
    lastReport: null,
    ...over,
  };
}

function joinToken(id: string, over: Partial<JoinTokenRecord> = {}): JoinTokenRecord {
  return {
    id,
    name: 'box-a',
    secretHash: `jh-${id}`,
    isReusable: false,
    expiresAtMs: 10_000_000,
    createdAtMs: 100,
    createdBy: 'alice',
    usedAtMs: null,
    revokedAtMs: null,
    ...over,
  };
}

function apiToken(id: string, over: Partial<ApiTokenRecord> = {}): ApiTokenRecord {
  return {
    id,
    name: `tok-${id}`,
    role: 'operator',
    secretHash: `ah-${id}`,
    createdAtMs: 100,
    createdBy: 'alice',
    revokedAtMs: null,
    lastUsedAtMs: null,
    ...over,
  };
}

async function allAudit(store: Store) {
  return store.listAudit({ limit: 10_000 });
}

export function storeContract(t: Test, factory: StoreFactory): void {
  // tap queues subtests and reports their failures itself: the returned promise needs no await.
  const withStore = (name: string, fn: (t: Test, store: Store) => Promise<void>): void =>
    void t.test(name, async (t) => {
      const { store, cleanup } = await factory();
      try {
        await store.migrate();
        await fn(t, store);
      } finally {
        await store.close();
        await cleanup();
      }
    });

  withStore('migrate is idempotent and ping works', async (t, store) => {
    await store.migrate();
    await store.ping();
    t.equal(await store.auditCount(), 0);
    t.same(await store.auditHead(), { lastId: 0, lastHash: GENESIS_HASH });
    t.equal(await store.currentPolicy(), null);
  });

  withStore('policy versions append with optimistic concurrency', async (t, store) => {
    const v1 = await store.appendPolicy(
      { document: 'version: 1\n', expectedVersion: 0, createdBy: 'alice', comment: 'first', atMs: 5 },
      audit('policy.put', 'policy', null, { version: 1 }),
    );
    t.match(v1, { version: 1, document: 'version: 1\n', createdAtMs: 5, createdBy: 'alice', comment: 'first' });
    t.equal(
      await store.appendPolicy(
        { document: 'x', expectedVersion: 0, createdBy: 'bob', comment: '', atMs: 6 },
        audit('policy.put'),
      ),
      'conflict',
    );
    t.equal(await store.auditCount(), 1, 'a conflict writes no audit entry');
    const v2 = await store.appendPolicy(
      { document: 'two', expectedVersion: 1, createdBy: 'bob', comment: '', atMs: 7 },
      audit('policy.put'),
    );
    t.match(v2, { version: 2 });
    t.match(await store.currentPolicy(), { version: 2, document: 'two' });
    t.match(await store.policyVersion(1), { version: 1, document: 'version: 1\n' });
    t.equal(await store.policyVersion(9), null);
    t.same(await store.listPolicyVersions(), [
      { version: 1, createdAtMs: 5, createdBy: 'alice', comment: 'first' },
      { version: 2, createdAtMs: 7, createdBy: 'bob', comment: '' },
    ]);
  });

  withStore('the validated form is stored beside a version and read back only on request', async (t, store) => {
    t.equal(await store.currentValidatedPolicy(), null);
    await store.appendPolicy(
      { document: 'one', expectedVersion: 0, createdBy: 'a', comment: '', atMs: 1 },
      audit('policy.put'),
    );
    t.match(await store.currentValidatedPolicy(), { version: 1, document: 'one', validated: '' }, 'none given: empty');
    const big = JSON.stringify({ release: 'x', policy: { names: Array.from({ length: 5000 }, (_, i) => `n${i}`) } });
    const v2 = await store.appendPolicy(
      { document: 'two', expectedVersion: 1, createdBy: 'a', comment: 'c', atMs: 2, validated: big },
      audit('policy.put'),
    );
    t.notOk(v2 !== 'conflict' && 'validated' in v2, 'the append answers without it');
    t.same(await store.currentValidatedPolicy(), {
      version: 2,
      document: 'two',
      createdAtMs: 2,
      createdBy: 'a',
      comment: 'c',
      validated: big,
    });
    t.notOk('validated' in ((await store.currentPolicy()) ?? {}), 'currentPolicy() leaves it out');
    t.notOk('validated' in ((await store.policyVersion(2)) ?? {}), 'policyVersion() leaves it out');
  });

  withStore(
    'agent streams: each replica publishes its own; the stale are ignored, then forgotten',
    async (t, store) => {
      const streams = store.streams;
      if (!streams) {
        t.equal(store.health, undefined, 'the in-memory store is one controller: no replicas, no streams');
        return;
      }
      t.same(await streams.live(0), { replicas: [], streams: new Map() });
      const many = Array.from({ length: 2500 }, (_, i) => ({ agent: `box-${i}`, sinceMs: 100 + i }));
      await streams.publish('r1', { up: many, down: [] }, 1000);
      await streams.publish(
        'r2',
        {
          up: [
            { agent: 'box-0', sinceMs: 50 },
            { agent: 'gp', sinceMs: 60 },
          ],
          down: [],
        },
        1000,
      );
      let live = await streams.live(900);
      t.same(live.replicas.sort(), ['r1', 'r2']);
      t.equal(live.streams.size, 2501, 'more rows than one statement takes');
      t.equal(live.streams.get('box-0'), 50, 'on two replicas at once (reconnecting): the earliest start');
      await streams.publish(
        'r1',
        { up: [{ agent: 'box-1', sinceMs: 7 }], down: many.slice(2).map((m) => m.agent) },
        2000,
      );
      live = await streams.live(900);
      t.same(
        [...live.streams].sort(),
        [
          ['box-0', 50],
          ['box-1', 7],
          ['gp', 60],
        ],
        'down removes, up replaces',
      );
      await streams.publish('r1', { up: [], down: [] }, 3000);
      live = await streams.live(2500);
      t.same(live.replicas, ['r1'], 'r2 not heard from since 1000');
      t.same(
        [...live.streams].sort(),
        [
          ['box-0', 100],
          ['box-1', 7],
        ],
        "r2's rows ignored",
      );
      await streams.forget({ beforeMs: 2500 });
      t.same((await streams.live(0)).replicas, ['r1'], 'r2 forgotten');
      await streams.forget({ replica: 'r1' });
      t.same(await streams.live(0), { replicas: [], streams: new Map() });
    },
  );

  withStore('concurrent policy writers: exactly one wins per version', async (t, store) => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        store.appendPolicy(
          { document: `d${i}`, expectedVersion: 0, createdBy: 'x', comment: '', atMs: i },
          audit('policy.put'),
        ),
      ),
    );
    t.equal(results.filter((r) => r !== 'conflict').length, 1);
    t.equal(await store.auditCount(), 1);
  });

  withStore('agents: enroll, re-enroll, update, revoke, delete', async (t, store) => {
    await store.createJoinToken(joinToken('j1'), audit('join_token.create'));
    await store.enrollAgent(agentRecord('box-a'), 'j1', audit('agent.enroll', 'agent/box-a'));
    t.match(await store.joinTokenById('j1'), { usedAtMs: 1000 });
    t.same(await store.agentByName('box-a'), agentRecord('box-a'));
    t.match(await store.agentByCredentialHash('cred-box-a'), { name: 'box-a' });
    t.equal(await store.agentByCredentialHash('nope'), null);
    await store.enrollAgent(
      agentRecord('box-b', { id: 'ag-b', overlayAddress: '100.64.0.3/10', advertised: [] }),
      'j1',
      audit('agent.enroll'),
    );
    t.same(
      (await store.listAgents()).map((a) => a.name),
      ['box-a', 'box-b'],
    );
    t.same((await store.usedOverlayAddresses()).sort(), ['100.64.0.2/10', '100.64.0.3/10']);

    // Re-enrolment of the same name replaces the record (new key, new credential).
    await store.enrollAgent(
      agentRecord('box-a', { id: 'ag-a2', credentialHash: 'cred2', publicKey: 'p'.repeat(43) + '=' }),
      'j1',
      audit('agent.enroll'),
    );
    t.match(await store.agentByName('box-a'), { id: 'ag-a2', credentialHash: 'cred2' });
    t.equal(await store.agentByCredentialHash('cred-box-a'), null);

    await store.updateAgent('box-a', {
      endpoint: '203.0.113.9:51820',
      endpoints: [
        { underlay: 'n3-wan', endpoint: '203.0.113.9:51820' },
        { underlay: 'psn-wan', endpoint: '192.0.2.9:51820' },
      ],
      isRelay: true,
      advertised: ['10.1.0.0/16', '10.2.0.0/16'],
      appliedGeneration: 4,
      desiredGeneration: 5,
      desiredHash: 'h5',
      lastReportAtMs: 77,
      lastReport: '{"x":1}',
    });
    t.same((await store.agentByName('box-a'))?.endpoints, [
      { underlay: 'n3-wan', endpoint: '203.0.113.9:51820' },
      { underlay: 'psn-wan', endpoint: '192.0.2.9:51820' },
    ]);
    t.equal((await store.agentByName('box-a'))?.isRelay, true);
    t.match(await store.agentByName('box-a'), {
      endpoint: '203.0.113.9:51820',
      advertised: ['10.1.0.0/16', '10.2.0.0/16'],
      appliedGeneration: 4,
      desiredGeneration: 5,
      desiredHash: 'h5',
      lastReportAtMs: 77,
      lastReport: '{"x":1}',
    });
    await store.updateAgent('box-a', {});
    await store.setDesiredGenerations([
      { name: 'box-a', generation: 6, hash: 'h6' },
      { name: 'ghost', generation: 1, hash: 'x' },
    ]);
    t.match(
      await store.agentByName('box-a'),
      { desiredGeneration: 6, desiredHash: 'h6', appliedGeneration: 4 },
      'batched generations land; unknown names are ignored',
    );
    t.equal(await store.agentByName('ghost'), null);

    const before = await store.auditCount();
    t.equal(await store.revokeAgent('box-a', 900, audit('agent.revoke')), true);
    t.equal(await store.revokeAgent('box-a', 901, audit('agent.revoke')), false, 'revoking twice is a no-op');
    t.equal(await store.revokeAgent('ghost', 901, audit('agent.revoke')), false);
    t.equal(await store.auditCount(), before + 1, 'only the effective revoke is audited');
    t.match(await store.agentByName('box-a'), { revokedAtMs: 900 });

    t.equal(await store.deleteAgent('box-b', audit('agent.delete')), true);
    t.equal(await store.deleteAgent('box-b', audit('agent.delete')), false);
    t.equal(await store.agentByName('box-b'), null);
  });

  withStore('join tokens', async (t, store) => {
    await store.createJoinToken(joinToken('j1', { isReusable: true, createdAtMs: 1 }), audit('join_token.create'));
    await store.createJoinToken(joinToken('j2', { createdAtMs: 2 }), audit('join_token.create'));
    t.match(await store.joinTokenBySecretHash('jh-j1'), { id: 'j1', isReusable: true, expiresAtMs: 10_000_000 });
    t.equal(await store.joinTokenBySecretHash('nope'), null);
    t.same(
      (await store.listJoinTokens()).map((j) => j.id),
      ['j1', 'j2'],
    );
    t.equal(await store.revokeJoinToken('j2', 50, audit('join_token.revoke')), true);
    t.equal(await store.revokeJoinToken('j2', 51, audit('join_token.revoke')), false);
    t.equal(await store.revokeJoinToken('zz', 51, audit('join_token.revoke')), false);
    t.match(await store.joinTokenById('j2'), { revokedAtMs: 50, isReusable: false });
  });

  withStore('API tokens: live names are unique, revoke frees the name', async (t, store) => {
    await store.createApiToken(apiToken('a1', { name: 'ci', role: 'admin' }), null);
    t.equal(await store.auditCount(), 0, 'bootstrap token may be created without an audit entry');
    await t.rejects(store.createApiToken(apiToken('a2', { name: 'ci' }), audit('api_token.create')), {
      code: 'conflict',
    });
    t.equal(await store.auditCount(), 0, 'a refused create writes nothing');
    t.match(await store.apiTokenBySecretHash('ah-a1'), { id: 'a1', role: 'admin', name: 'ci' });
    await store.touchApiToken('a1', 99);
    t.match(await store.apiTokenById('a1'), { lastUsedAtMs: 99 });
    t.equal(await store.revokeApiToken('a1', 100, audit('api_token.revoke')), true);
    t.equal(await store.revokeApiToken('a1', 100, audit('api_token.revoke')), false);
    await store.createApiToken(apiToken('a3', { name: 'ci' }), audit('api_token.create'));
    t.same(
      (await store.listApiTokens()).map((x) => [x.id, x.revokedAtMs]),
      [
        ['a1', 100],
        ['a3', null],
      ],
    );
    t.equal(await store.apiTokenById('zz'), null);
  });

  withStore('audit: chain is valid, paged, and edits are detected', async (t, store) => {
    for (let i = 0; i < 5; i++) {
      await store.appendAudit(
        {
          actor,
          action: 'test.write',
          target: `t/${i}`,
          before: { n: i, nested: { b: 1, a: [1, 'x', null] } },
          after: undefined,
        },
        1000 + i,
      );
    }
    const entries = await allAudit(store);
    t.equal(entries.length, 5);
    t.same(
      entries.map((e) => e.id),
      [1, 2, 3, 4, 5],
    );
    t.equal(entries[0]!.prevHash, GENESIS_HASH);
    t.equal(entries[1]!.prevHash, entries[0]!.hash);
    t.same(entries[2]!.before, { n: 2, nested: { a: [1, 'x', null], b: 1 } });
    t.equal(entries[2]!.after, null, 'undefined is stored as null');
    t.match(entries[3]!, { atMs: 1003, actor, action: 'test.write', target: 't/3' });
    t.same(verifyAuditChain(entries, await store.auditHead()), { isValid: true, count: 5, lastHash: entries[4]!.hash });
    t.same(
      (await store.listAudit({ afterId: 2, limit: 2 })).map((e) => e.id),
      [3, 4],
    );

    const edited = entries.map((e) => (e.id === 3 ? { ...e, target: 't/other' } : e));
    t.match(verifyAuditChain(edited), { isValid: false, brokenAtId: 3, index: 2, reason: /changed/ });
    const deleted = entries.filter((e) => e.id !== 2);
    t.match(verifyAuditChain(deleted), { isValid: false, brokenAtId: 3, reason: /missing/ });
    t.match(verifyAuditChain(entries.slice(0, 4), await store.auditHead()), {
      isValid: false,
      brokenAtId: 5,
      reason: /removed from the end/,
    });
    const relinked = entries.map((e) => (e.id === 4 ? { ...e, prevHash: 'f'.repeat(64) } : e));
    t.match(verifyAuditChain(relinked), { isValid: false, brokenAtId: 4, reason: /does not point/ });
  });

  withStore('concurrent audited writes keep one unbroken chain', async (t, store) => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2
          ? store.appendAudit(audit('test.concurrent', `c/${i}`), i)
          : store.createJoinToken(joinToken(`jc${i}`), audit('join_token.create', `jc${i}`)),
      ),
    );
    const entries = await allAudit(store);
    t.equal(entries.length, 20);
    t.match(verifyAuditChain(entries, await store.auditHead()), { isValid: true, count: 20 });
  });
}
