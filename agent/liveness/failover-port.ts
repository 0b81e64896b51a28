// The liveness layer as the edge failover engine uses it (agent/failover/engine.ts LivenessPort):
// one runner, made when the config first has serving groups (no socket is bound before), on the
// engine's clock so that "up since" and the hold-downs are measured on one time line.
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Timers } from '../../lib/timers.js';
import type { FailoverAdvert, LivenessPort } from '../failover/engine.js';
import { LivenessRunner, type LivenessTransport } from './runner.js';

export function createLivenessPort(opts: {
  log: Logger;
  clock: Clock;
  timers: Timers;
  /** Tests: a fake socket. */
  transport?: LivenessTransport;
}): LivenessPort {
  let runner: LivenessRunner | null = null;
  let port = 0;
  const changeListeners: Array<(names: string[]) => void> = [];
  const advertListeners: Array<(a: FailoverAdvert) => void> = [];
  let names: readonly string[] = [];
  /** What this box holds, for a runner made after the engine last said (configure comes first). */
  let held: readonly string[] = [];
  return {
    configure(c) {
      names = c.peers.map((p) => p.name);
      if (!runner) {
        if (c.peers.length === 0 && c.port === 0) return Promise.resolve();
        port = c.port;
        runner = new LivenessRunner({
          timing: { intervalMs: c.intervalMs, multiplier: c.multiplier },
          port: c.port,
          log: opts.log,
          clock: opts.clock,
          timers: opts.timers,
          ...(opts.transport ? { transport: opts.transport } : {}),
        });
        runner.setHeld(held);
        runner.onChange((n) => changeListeners.forEach((l) => l(n)));
        runner.onAdvert((_address, a) => advertListeners.forEach((l) => l(a)));
      } else {
        if (c.port !== 0 && c.port !== port) {
          port = c.port;
          runner.setPort(c.port);
        }
        runner.setTiming({ intervalMs: c.intervalMs, multiplier: c.multiplier });
      }
      runner.setPeers(c.peers);
      return Promise.resolve();
    },
    onChange: (l) => void changeListeners.push(l),
    onAdvert: (l) => void advertListeners.push(l),
    sendAdvert(lan, a) {
      runner?.sendAdvert(lan.cidr, lan.ifname, a);
    },
    setHeld(groups) {
      held = groups;
      runner?.setHeld(groups);
    },
    holds: (name, group) => runner?.holds(name, group) ?? false,
    state: (name) => runner?.state(name),
    hasHeard: (name) => runner?.hasHeard(name) ?? false,
    sinceMs: (name) => runner?.sinceMs(name),
    peerNames: () => names,
    stop() {
      runner?.stop();
      runner = null;
      return Promise.resolve();
    },
  };
}
