// The far side of the echo benchmark (bench/echo.ts): N simulated peers, each its own UDP socket
// on a loopback address 127.1.x.y, each sending the agent one echo packet per interval that says
// "I hear you" (a healthy peer), spread over the interval, and reading what the agent sends.
//   node --import ./bench/register.js bench/echo-peers.ts PORT PEERS INTERVAL_MS
// Prints "ready" once every socket is bound; ends when stdin closes.
import dgram from 'node:dgram';
import { pathToFileURL } from 'node:url';
import { ECHO_PACKET_BYTES, encodeEcho } from '../agent/liveness/echo.js';

export const peerAddress = (i: number): string => `127.1.${(i + 1) >> 8}.${(i + 1) & 255}`;

async function main(): Promise<void> {
  const [port, peers, intervalMs] = process.argv.slice(2).map(Number) as [number, number, number];
  const packet = Buffer.alloc(ECHO_PACKET_BYTES);
  encodeEcho(packet, true, 1);
  let received = 0;
  const sockets = await Promise.all(
    Array.from(
      { length: peers },
      (_, i) =>
        new Promise<dgram.Socket>((resolve, reject) => {
          const s = dgram.createSocket({ type: 'udp4', lookup: (a, _o, cb) => cb(null, a, 4) });
          s.on('message', () => void received++);
          s.once('error', reject);
          s.bind(port, peerAddress(i), () => resolve(s));
        }),
    ),
  );
  const slots = 10;
  let slot = 0;
  const timer = setInterval(() => {
    for (let i = slot; i < sockets.length; i += slots) sockets[i]!.send(packet, port, '127.0.0.1');
    slot = (slot + 1) % slots;
  }, intervalMs / slots);
  process.stdout.write('ready\n');
  process.stdin.on('end', () => {
    clearInterval(timer);
    for (const s of sockets) s.close();
    process.stderr.write(`peers received ${received}\n`);
  });
  process.stdin.resume();
}

// Only as the entry point: bench/echo.ts imports peerAddress from here.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
