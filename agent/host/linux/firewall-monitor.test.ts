// The nft monitor can die (ENOBUFS when a 10,000-element commit floods its socket). The adapter must
// start a new one instead of listing the whole table on every observe from then on.
import t from 'tap';
import { LinuxFirewall } from './firewall.js';
import type { CommandRunner, RunOptions, RunResult, WatchHandle } from './run.js';

class ScriptedRunner implements CommandRunner {
  listings = 0;
  watches: Array<{ onExit: (code: number) => void }> = [];
  async run(argv: readonly string[], _opts?: RunOptions): Promise<RunResult> {
    if (argv[1] === 'list') {
      this.listings++;
      return { exitCode: 0, stdout: 'table inet crosslink {\n}\n', stderr: '' };
    }
    return { exitCode: 0, stdout: '', stderr: '' };
  }
  watch(_argv: readonly string[], _opts: { netns?: string }, _onLine: (line: string) => void, onExit: (code: number) => void): WatchHandle {
    this.watches.push({ onExit });
    return { pid: 1_000_000 + this.watches.length, stop: () => {} };
  }
}

t.test('a monitor that exits is replaced; observes are served from the cache again', async (t) => {
  const runner = new ScriptedRunner();
  const fw = new LinuxFirewall({ runner });
  await fw.observe();
  await fw.observe();
  t.equal(runner.watches.length, 1, 'one monitor');
  t.equal(runner.listings, 1, 'the second observe came from the cache');

  runner.watches[0]!.onExit(1); // e.g. ENOBUFS after a large commit
  await fw.observe();
  t.equal(runner.watches.length, 2, 'a new monitor was started');
  t.equal(runner.listings, 2, 'with one full listing, since changes may have been missed');
  await fw.observe();
  await fw.observe();
  t.equal(runner.listings, 2, 'then the cache serves again');
});
