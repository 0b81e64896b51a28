import t from 'tap';
import { Registry } from 'prom-client';
import type { PeerLiveness } from './echo.js';
import { registerLivenessMetrics } from './metrics.js';

t.test('liveness series', async (t) => {
  const registry = new Registry();
  let states: Array<{ name: string; state: PeerLiveness }> = [
    { name: 'civic', state: 'up' },
    { name: 'gp', state: 'init' },
  ];
  const counters = { rx: 5, tx: 7 };
  registerLivenessMetrics(registry, { states: () => states, counters: () => counters });
  let text = await registry.metrics();
  t.match(text, /crosslink_peer_liveness_up\{peer="civic"\} 1/);
  t.match(text, /crosslink_peer_liveness_up\{peer="gp"\} 0/);
  t.match(text, /crosslink_liveness_packets_total\{direction="rx"\} 5/);
  t.match(text, /crosslink_liveness_packets_total\{direction="tx"\} 7/);
  states = [{ name: 'gp', state: 'down' }];
  counters.rx = 9;
  text = await registry.metrics();
  t.notMatch(text, /peer="civic"/, 'a removed peer leaves no series');
  t.match(text, /crosslink_liveness_packets_total\{direction="rx"\} 9/);
});
