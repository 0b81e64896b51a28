// The real TCP, UDP and local-address ports of the path prober (ports.ts), over node:net,
// node:dgram and node:os.
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import type { AttemptOutcome, LocalAddressLookup, TcpConnect, UdpExchange } from './ports.js';

function classifySocketError(e: NodeJS.ErrnoException, timeoutMs: number): AttemptOutcome {
  switch (e.code ?? '') {
    case 'ECONNREFUSED':
      return { kind: 'refused', detail: 'connection refused' };
    case 'EHOSTUNREACH':
      return { kind: 'unreachable', detail: 'no route to host' };
    case 'ENETUNREACH':
      return { kind: 'unreachable', detail: 'network unreachable' };
    // A local firewall rejecting the packet on output.
    case 'EPERM':
    case 'EACCES':
      return { kind: 'unreachable', detail: 'blocked by a local firewall' };
    case 'ETIMEDOUT':
      return { kind: 'timeout', detail: `timeout after ${timeoutMs} ms` };
    default:
      return { kind: 'error', detail: `${e.code ?? 'error'}: ${e.message}` };
  }
}

/** TCP connect with node:net; resolves (never rejects) once connected, refused or timed out. */
export const connectTcp: TcpConnect = (o) =>
  new Promise((resolve) => {
    const startedMs = performance.now();
    let isDone = false;
    const socket = net.connect({
      host: o.host,
      port: o.port,
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      ...(o.localPort ? { localPort: o.localPort } : {}),
    });
    const finish = (outcome: AttemptOutcome): void => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ kind: 'timeout', detail: `timeout after ${o.timeoutMs} ms` }), o.timeoutMs);
    socket.once('connect', () => finish({ kind: 'connected', rttMs: performance.now() - startedMs }));
    socket.once('error', (e: NodeJS.ErrnoException) => finish(classifySocketError(e, o.timeoutMs)));
  });

/** One UDP datagram to host:port from a connected socket; an answer of any content is success,
 *  an ICMP port unreachable arrives as ECONNREFUSED. */
export const udpExchange: UdpExchange = (o) =>
  new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(o.host) ? 'udp6' : 'udp4');
    let startedMs = performance.now();
    let isDone = false;
    const finish = (outcome: AttemptOutcome): void => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        /* already closed */
      }
      resolve(outcome);
    };
    const timer = setTimeout(
      () => finish({ kind: 'timeout', detail: `no reply within ${o.timeoutMs} ms` }),
      o.timeoutMs,
    );
    socket.on('error', (e: NodeJS.ErrnoException) => finish(classifySocketError(e, o.timeoutMs)));
    socket.on('message', () => finish({ kind: 'connected', rttMs: performance.now() - startedMs }));
    socket.bind({ port: o.localPort ?? 0, ...(o.localAddress ? { address: o.localAddress } : {}) }, () => {
      socket.connect(o.port, o.host, () => {
        startedMs = performance.now();
        socket.send(o.payload, (err) => {
          if (err) finish(classifySocketError(err, o.timeoutMs));
        });
      });
    });
  });

/** Every address on the box's interfaces (node:os), without zone suffixes. */
export const osLocalAddresses: LocalAddressLookup = () =>
  Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, '')));
