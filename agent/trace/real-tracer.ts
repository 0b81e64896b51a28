// The live tracer over the real host: nft and conntrack through the agent's CommandRunner, the
// test packet through the path prober's sockets (tcp, udp) and ping (icmp).
import type { LiveTracerDeps } from './live-tracer.js';
import { LiveTracer } from './live-tracer.js';
import type { CommandRunner } from '../host/linux/run.js';
import { pingOnce } from '../health/ping.js';
import { connectTcp, osLocalAddresses, udpExchange } from '../health/sockets.js';
import { UDP_PROBE_PAYLOAD } from '../health/path-prober.js';

export type LiveTracerFactory = (o: Omit<LiveTracerDeps, 'runner' | 'attempt' | 'localAddresses'>) => LiveTracer;

export function createLiveTracer(
  o: Omit<LiveTracerDeps, 'attempt' | 'localAddresses'> & { runner: CommandRunner },
): LiveTracer {
  return new LiveTracer({
    ...o,
    localAddresses: osLocalAddresses,
    attempt: (t, source, timeoutMs) => {
      const a = { host: t.target, port: t.port, localAddress: source, localPort: t.sourcePort, timeoutMs };
      if (t.protocol === 'tcp') return connectTcp(a);
      if (t.protocol === 'udp') return udpExchange({ ...a, payload: UDP_PROBE_PAYLOAD });
      return pingOnce(o.runner, t.target, {
        sourceAddress: source,
        timeoutSeconds: Math.max(1, Math.floor(timeoutMs / 1000)),
      });
    },
  });
}
