// The process handle the testbed stops its processes with. The case that matters: a process that
// ignores SIGTERM, stopped with nothing else pending in the test process. Its child handle is unref'd
// (a forgotten process must not keep a test alive), so once the SIGKILL timer has fired the event loop
// could empty before the exit is seen and end the test file mid-await ("test unfinished" in CI's
// relay.test.ts). Run in a separate Node process so that tap's own handles do not hide it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const execModule = fileURLToPath(new URL('./exec.ts', import.meta.url));

const script = `
import { spawnIn } from ${JSON.stringify(execModule)};
const p = spawnIn(undefined, ['sh', '-c', 'trap "" TERM; echo up; while :; do sleep 0.05; done']);
await p.waitForOutput(/up/, 5000);
const s = await p.stop({ graceMs: 100 });
console.log('stopped by ' + s.signal);
`;

t.test('stop() resolves for a process that ignores SIGTERM, with nothing else pending', async (t) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  t.equal(r.status, 0, `the script ran: ${r.stderr}`);
  t.match(r.stdout, /stopped by SIGKILL/, 'stop() resolved after the SIGKILL, before the process ended');
});
