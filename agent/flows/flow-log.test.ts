import t from 'tap';
import { mkdtempSync, rmSync, statSync, existsSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlowLogFile, followFlowLog, readFlowLog } from './flow-log.js';
import type { FlowRecord } from '../../lib/export/record.js';

const rec = (i: number): FlowRecord => ({
  startMs: 1_800_000_000_000 + i,
  endMs: 1_800_000_000_500 + i,
  protocol: 6,
  srcAddress: '10.1.0.2',
  srcPort: 40000 + (i % 20000),
  dstAddress: '10.2.0.2',
  dstPort: 8080,
  packets: 10,
  bytes: 1000,
  replyPackets: 8,
  replyBytes: 600,
  rule: 'a-to-b-web',
  direction: 'outbound',
  verdict: 'allowed',
  srcZone: '',
  dstZone: '',
  box: 'gp',
});

t.test('records are written as JSON lines and read back in order', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xl-flows-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = new FlowLogFile(join(dir, 'flows.jsonl'));
  for (let i = 0; i < 3; i++) log.write(rec(i));
  await log.flush();
  const back = readFlowLog(join(dir, 'flows.jsonl'));
  t.same(
    back.map((r) => r.srcPort),
    [40000, 40001, 40002],
  );
  t.match(back[0], { rule: 'a-to-b-web', start: '2027-01-15T08:00:00.000Z' });
});

t.test('the log stays within its limit: one rotation, oldest dropped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xl-flows-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'flows.jsonl');
  const log = new FlowLogFile(path, 100_000);
  for (let i = 0; i < 3000; i++) {
    log.write(rec(i));
    if (i % 100 === 99) await log.flush();
  }
  await log.flush();
  const total = statSync(path).size + (existsSync(`${path}.1`) ? statSync(`${path}.1`).size : 0);
  t.ok(total <= 100_000, `both files together ${total} bytes <= 100,000`);
  t.ok(log.counters.rotations >= 1, `rotated ${log.counters.rotations} times`);
  const back = readFlowLog(path);
  t.equal(back[back.length - 1]!.srcPort, 40000 + 2999, 'the newest record is kept');
  t.ok(back.length < 3000 && back.length > 100, `${back.length} records kept`);
  for (let i = 1; i < back.length; i++) if (back[i]!.startMs <= back[i - 1]!.startMs) t.fail('out of order');
});

t.test('follow: new lines only, a torn line waits for its end, rotation starts over', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xl-flows-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'flows.jsonl');
  const log = new FlowLogFile(path);
  log.write(rec(0));
  await log.flush();
  const seen: number[] = [];
  const stop = followFlowLog(path, (r) => seen.push(r.srcPort), 20);
  t.teardown(stop);
  await new Promise((r) => setTimeout(r, 80));
  const line = JSON.stringify(rec(1));
  appendFileSync(path, line.slice(0, 20));
  await new Promise((r) => setTimeout(r, 80));
  t.same(seen, [], 'the old record and half a line: nothing yet');
  appendFileSync(path, `${line.slice(20)}\n`);
  await new Promise((r) => setTimeout(r, 80));
  t.same(seen, [40001]);
  rmSync(path);
  appendFileSync(path, `${JSON.stringify(rec(2))}\n`);
  await new Promise((r) => setTimeout(r, 80));
  t.same(seen, [40001, 40002], 'after a rotation the new file is read from its start');
});
