// The agent's /metrics: probe and firewall series come from the status, and docs/metrics.md's
// "Agent" section lists exactly the registered metrics.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { createAgentMetrics, type AgentStatus } from './status-server.js';

const status: AgentStatus = {
  name: 'a',
  version: 't',
  interface: 'xl0',
  publicKey: 'k',
  overlayAddress: '100.64.0.1/10',
  controller: { url: '', isConnected: true, staleSince: null, staleSeconds: 0, reason: null },
  generation: { seen: 3, applied: 3, desired: 3 },
  lastApply: null,
  isApplied: true,
  errors: [],
  peers: [
    {
      name: 'b',
      publicKey: 'p',
      endpoint: '',
      latestHandshake: null,
      latestHandshakeUnix: 0,
      handshakeAgeSeconds: null,
      rxBytes: 10,
      txBytes: 20,
      probe: { isProbed: true, isReachable: true, rttMs: 1.5, lossRatio: 0.1 },
    },
  ],
  probes: [{ name: 'care/0', isOk: false, detail: 'connection refused', rttMs: 0, checkedAt: null }],
  firewallCounters: { dropped_inbound: { packets: 7, bytes: 700 } },
};

t.test('probe and firewall metrics', async (t) => {
  const text = await createAgentMetrics(() => status).registry.metrics();
  t.match(text, /crosslink_agent_peer_probe_success\{peer="b"\} 1/);
  t.match(text, /crosslink_agent_peer_probe_rtt_seconds\{peer="b"\} 0.0015/);
  t.match(text, /crosslink_agent_peer_probe_loss_ratio\{peer="b"\} 0.1/);
  t.match(text, /crosslink_agent_probe_success\{probe="care\/0"\} 0/);
  t.notMatch(text, /crosslink_agent_probe_rtt_seconds\{/);
  t.match(text, /crosslink_agent_firewall_dropped_packets_total\{counter="dropped_inbound"\} 7/);
  t.match(text, /crosslink_agent_firewall_dropped_bytes_total\{counter="dropped_inbound"\} 700/);
});

t.test('docs/metrics.md documents exactly the agent metrics (name, type, labels)', async (t) => {
  const md = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
  const section = md.split(/^## Agent\s*$/m)[1]?.split(/^## /m)[0] ?? '';
  const documented = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| `([a-z_:]+)` \| (gauge|counter|histogram|summary) \| ([^|]*) \|/.exec(line);
    if (!m) continue;
    const labels = m[3]!.trim() === '—' ? [] : [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((x) => x[1]);
    documented.set(m[1]!, `${m[2]} ${labels.join(',')}`);
  }
  const registered = new Map<string, string>();
  for (const metric of createAgentMetrics(() => status).registry.getMetricsAsArray() as unknown as Array<{
    name: string;
    type: string;
    labelNames: string[];
  }>) {
    registered.set(metric.name, `${metric.type} ${metric.labelNames.join(',')}`);
  }
  t.same(Object.fromEntries([...documented].sort()), Object.fromEntries([...registered].sort()));
});
