// NftMonitor: which `nft monitor` lines count as a change, and which are our own writes.
import t from 'tap';
import { NftMonitor } from './nft-monitor.js';
import type { CommandRunner, RunOptions, RunResult, WatchHandle } from './run.js';

class LineRunner implements CommandRunner {
  line: (l: string) => void = () => undefined;
  exit: (code: number) => void = () => undefined;
  stops = 0;
  async run(_argv: readonly string[], _opts?: RunOptions): Promise<RunResult> {
    return { exitCode: 0, stdout: '', stderr: '' };
  }
  watch(
    _argv: readonly string[],
    _opts: { netns?: string },
    onLine: (line: string) => void,
    onExit: (code: number) => void,
  ): WatchHandle {
    this.line = onLine;
    this.exit = onExit;
    return { pid: 1, stop: () => void this.stops++ };
  }
}

t.test('a commit by another process is a change; one of ours is not', async (t) => {
  const runner = new LineRunner();
  const m = new NftMonitor({ runner });
  let told = 0;
  m.onChange(() => void told++);
  m.start();
  t.ok(m.isRunning);
  const mark = m.epoch;
  m.noteOwnWrite(4242);
  runner.line('# new generation 7 by process 4242');
  t.notOk(m.changedSince(mark), 'our own write');
  runner.line('add rule inet crosslink forward accept'); // event text alone is no signal
  t.notOk(m.changedSince(mark));
  runner.line('# new generation 8 by process 4242');
  t.ok(m.changedSince(mark), 'one PID, one transaction: a second commit by that PID is foreign');
  t.equal(told, 1);
  const mark2 = m.epoch;
  runner.line('# stderr: netlink: Error: Could not receive: No buffer space available');
  t.ok(m.changedSince(mark2), 'lost events count as a change');
  t.equal(told, 2);
});

t.test('the end of the monitor is told, a stop of ours is not', async (t) => {
  const runner = new LineRunner();
  const m = new NftMonitor({ runner });
  let told = 0;
  m.onChange(() => void told++);
  m.start();
  runner.exit(1);
  t.notOk(m.isRunning);
  t.equal(told, 1, 'told of the end');
  m.start();
  const exitOld = runner.exit;
  m.stop();
  exitOld(0);
  t.equal(told, 1, 'not told of a monitor we stopped');
  t.equal(runner.stops, 1);
  m.noteOwnWrite(99); // no monitor: nothing to remember
  m.start();
  const mark = m.epoch;
  runner.line('# new generation 9 by process 99');
  t.ok(m.changedSince(mark), 'a PID noted while no monitor ran is not taken for ours');
});
