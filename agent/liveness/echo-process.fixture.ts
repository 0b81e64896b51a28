// One echo runner as its own process (a namespace test runs one inside each namespace):
//   node --import ./bench/register.js agent/liveness/echo-process.fixture.ts PORT INTERVAL MULT NAME=ADDR...
// Prints one JSON line per state change: {"atMs": Date.now(), "name", "state"}, and {"ready": true}
// once bound. Ends on SIGTERM or when stdin closes.
import { createLogger } from '../../lib/logger.js';
import { LivenessRunner } from './runner.js';
import { LivenessSocket } from './socket.js';

const [port, intervalMs, multiplier, ...peerArgs] = process.argv.slice(2);
const peers = peerArgs.map((a) => {
  const [name, address] = a.split('=');
  return { name: name!, address: address! };
});
const log = createLogger({ name: 'echo-process' });
const socket = new LivenessSocket({ port: Number(port), log });
const runner = new LivenessRunner({
  timing: { intervalMs: Number(intervalMs), multiplier: Number(multiplier) },
  transport: socket,
  log,
});
runner.onChange((names) => {
  for (const name of names)
    process.stdout.write(`${JSON.stringify({ atMs: Date.now(), name, state: runner.state(name) })}\n`);
});
runner.setPeers(peers);
const stop = () => {
  runner.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
void socket.ready().then((r) => process.stdout.write(`${JSON.stringify({ ready: r.v4 && r.v6 })}\n`));
