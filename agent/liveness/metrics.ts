// Prometheus series of the edge liveness echo, on the agent's /metrics registry
// (status-server.ts createAgentMetrics): read from the runner at scrape time.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { PeerLiveness } from './echo.js';

export interface LivenessMetricsSource {
  states(): ReadonlyArray<{ name: string; state: PeerLiveness }>;
  counters(): { rx: number; tx: number };
}

/** Adds crosslink_peer_liveness_up{peer} and crosslink_liveness_packets_total{direction}. */
export function registerLivenessMetrics(registry: Registry, source: LivenessMetricsSource): void {
  new Gauge({
    name: 'crosslink_peer_liveness_up',
    help: "1 while the edge echo sees the peer alive ('up'), 0 otherwise ('init' or 'down').",
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of source.states()) this.set({ peer: p.name }, p.state === 'up' ? 1 : 0);
    },
  });
  // The runner's counters only grow; the series mirrors them (a restart is a counter reset).
  let seen = { rx: 0, tx: 0 };
  new Counter({
    name: 'crosslink_liveness_packets_total',
    help: 'Edge liveness echo packets received from and sent to peers.',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      const now = source.counters();
      this.inc({ direction: 'rx' }, Math.max(0, now.rx - seen.rx));
      this.inc({ direction: 'tx' }, Math.max(0, now.tx - seen.tx));
      seen = { rx: now.rx, tx: now.tx };
    },
  });
}
