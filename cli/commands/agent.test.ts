import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentStatus } from '../../agent/health/status-server.js';
import { formatStatus, runAgentStatus, runConfigCheck } from './agent.js';

const STATUS: AgentStatus = {
  name: 'leeds-gw',
  version: '0.1.0',
  interface: 'crosslink0',
  publicKey: 'k',
  overlayAddress: '100.64.0.7/10',
  controller: {
    url: 'https://ctl:8443',
    isConnected: false,
    staleSince: '2026-01-01T10:00:00.000Z',
    staleSeconds: 95,
    reason: 'no heartbeat for 90 s',
  },
  generation: { seen: 43, applied: 41, desired: 43 },
  lastApply: { at: '2026-01-01T10:01:00.000Z', durationMs: 12, steps: 3 },
  isApplied: false,
  errors: [
    {
      step: 'firewall',
      command: 'nft -f /tmp/r.nft',
      exitCode: 1,
      stderr: 'Error: syntax error\nmore',
      isTerminal: false,
      message: 'x',
    },
  ],
  peers: [
    {
      name: 'york-gw',
      publicKey: 'a',
      endpoint: '192.0.2.9:51820',
      latestHandshake: null,
      latestHandshakeUnix: 0,
      handshakeAgeSeconds: 12,
      rxBytes: 2048,
      txBytes: 10,
    },
    {
      name: 'hull-gw',
      publicKey: 'b',
      endpoint: '',
      latestHandshake: null,
      latestHandshakeUnix: 0,
      handshakeAgeSeconds: null,
      rxBytes: 0,
      txBytes: 0,
    },
  ],
};

function io(response: () => Promise<Response>) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      out: (s: string) => out.push(s),
      err: (s: string) => err.push(s),
      fetch: (async () => response()) as typeof fetch,
    },
  };
}

t.test('status table says what is wrong', async (t) => {
  const text = formatStatus(STATUS);
  t.match(text, /NOT CONNECTED: config stale since 2026-01-01T10:00:00.000Z \(95 s\): no heartbeat for 90 s/);
  t.match(text, /applied 41, enforcing 43, seen 43 {2}\(NOT fully applied\)/);
  t.match(text, /firewall: nft -f \/tmp\/r.nft -> exit 1: Error: syntax error\n/);
  t.match(text, /york-gw\s+192\.0\.2\.9:51820\s+12 s ago\s+2\.0 KiB\s+10 B/);
  t.match(text, /hull-gw\s+-\s+never/);
});

t.test('status shows the serving groups and what the echo says', async (t) => {
  const text = formatStatus({
    ...STATUS,
    failover: {
      isEligible: false,
      groups: [
        { name: 'civic-lan', candidates: ['civic-a', 'civic-b'], role: 'sender', active: 'civic-b', holder: 'civic-b' },
        { name: 'care', candidates: ['sjuh', 'sjuh-standby'], role: 'candidate', isHolding: false },
        { name: 'dns', candidates: ['dns-a', 'dns-b'], role: 'sender', active: 'dns-a', holder: 'dns-b' },
        { name: 'hl7', candidates: ['hl7-a', 'hl7-b'], role: 'sender', active: 'hl7-a', holder: null },
      ],
      peers: [{ name: 'civic-a', state: 'down', forSeconds: 2.5 }],
    },
  });
  t.match(text, /failover {4}4 serving group\(s\); reaches NO peer over the overlay \(holds no gateway\)/);
  t.match(text, /civic-lan\s+civic-a > civic-b\s+sent to civic-b \(holds the gateway\)/);
  t.match(text, /care\s+sjuh > sjuh-standby\s+standing by/);
  t.match(text, /dns\s+dns-a > dns-b\s+sent to dns-a \(gateway held by dns-b\)/);
  t.match(text, /hl7\s+hl7-a > hl7-b\s+sent to hl7-a \(no holder heard\)/);
  t.match(text, /civic-a\s+down\s+2\.5s/);
  t.notMatch(formatStatus(STATUS), /failover/, 'nothing without serving groups');
});

t.test('status exit codes', async (t) => {
  const degraded = io(async () => new Response(JSON.stringify(STATUS)));
  t.equal(await runAgentStatus({ statusListen: '127.0.0.1:9474', json: false }, degraded.io), 1);
  const healthy = {
    ...STATUS,
    controller: { ...STATUS.controller, isConnected: true, staleSince: null },
    isApplied: true,
    errors: [],
  };
  const ok = io(async () => new Response(JSON.stringify(healthy)));
  t.equal(await runAgentStatus({ statusListen: '127.0.0.1:9474', json: true }, ok.io), 0);
  t.same(JSON.parse(ok.out.join('')), healthy);
  const down = io(async () => {
    throw new TypeError('fetch failed');
  });
  t.equal(await runAgentStatus({ statusListen: '127.0.0.1:9', json: false }, down.io), 2);
  t.match(down.err.join(''), /cannot read http:\/\/127\.0\.0\.1:9\/status: fetch failed \(is the agent running\?\)/);
});

t.test('config check', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xl-cli-'));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'name: leeds-gw\nadvertise: [10.20.1.0/24]\n');
  const a = io(async () => new Response(''));
  t.equal(await runConfigCheck(good, a.io), 0);
  t.match(a.out.join(''), /good\.yaml: valid\n.*advertise 10\.20\.1\.0\/24/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'name: leeds-gw\nlisten-port: nope\n');
  const b = io(async () => new Response(''));
  t.equal(await runConfigCheck(bad, b.io), 1);
  t.match(b.err.join(''), /bad\.yaml:2: listen-port: must be a whole number/);
});
