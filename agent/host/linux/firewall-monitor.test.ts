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
  watch(
    _argv: readonly string[],
    _opts: { netns?: string },
    _onLine: (line: string) => void,
    onExit: (code: number) => void,
  ): WatchHandle {
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

/** nft in a namespace of its own, driven by a script: every commit gets the next generation, and
 *  the running monitor prints it after `delayFor(commitNo)` ms (Infinity: never). */
class GenerationRunner implements CommandRunner {
  generation = 100;
  commits = 0;
  listings = 0;
  private nextPid = 5000;
  private monitor: ((line: string) => void) | null = null;
  isLoaded = false;
  /** Ends the running monitor, as a crash or ENOBUFS would. */
  endMonitor: () => void = () => undefined;
  constructor(private readonly delayFor: (commitNo: number, argv: readonly string[]) => number) {}
  async run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    const pid = this.nextPid++;
    opts?.onSpawn?.(pid);
    const words = argv[0] === 'nice' ? argv.slice(3) : argv;
    if (words[1] === 'list') {
      this.listings++;
      return {
        exitCode: this.isLoaded ? 0 : 1,
        stdout: this.isLoaded ? 'table inet crosslink {\n}\n' : '',
        stderr: this.isLoaded ? '' : 'Error: No such file or directory',
      };
    }
    if (words[1] === '-f') this.isLoaded = true;
    const generation = ++this.generation;
    const delay = this.delayFor(++this.commits, words);
    const monitor = this.monitor;
    if (monitor && Number.isFinite(delay))
      setTimeout(() => monitor(`# new generation ${generation} by process ${pid}`), delay);
    return { exitCode: 0, stdout: '', stderr: '' };
  }
  watch(
    _argv: readonly string[],
    _opts: { netns?: string },
    onLine: (line: string) => void,
    onExit: (code: number) => void,
  ): WatchHandle {
    this.monitor = onLine;
    this.endMonitor = () => {
      this.monitor = null;
      onExit(1);
    };
    return {
      pid: 1,
      stop: () => {
        if (this.monitor === onLine) this.monitor = null;
      },
    };
  }
}

t.test('a barrier line printed late is ours, not a foreign commit: the gap stays proven clean', async (t) => {
  // Commits: 1 the pre-commit barrier; 2 our load (no monitor runs then); 3 the post-commit
  // barrier, printed only after 60 ms (a loaded box), so a 4th barrier is committed and seen.
  const runner = new GenerationRunner((n, argv) => (argv[1] === '-f' ? Infinity : n === 3 ? 60 : 1));
  const fw = new LinuxFirewall({ runner });
  const fp = await fw.replace('table inet crosslink {\n}\n');
  await fw.settled();
  await new Promise((r) => setTimeout(r, 100)); // the late line has arrived
  t.equal(runner.commits, 4, 'one barrier before, our load, two barriers after');
  const listings = runner.listings;
  t.same(await fw.observe(), { exists: true, fingerprint: fp }, 'no drift');
  t.equal(runner.listings, listings, 'served from the cache: the late line was not counted as foreign');
});

t.test(
  "a barrier started ahead that came to nothing (its monitor died) is replaced by one of replace()'s own",
  async (t) => {
    // Commit 1, the barrier observe() starts ahead, is never printed, and its monitor dies.
    const runner = new GenerationRunner((n, argv) => (argv[1] === '-f' || n === 1 ? Infinity : 1));
    const fw = new LinuxFirewall({ runner });
    t.same(await fw.observe(), { exists: false, fingerprint: '' });
    await new Promise((r) => setTimeout(r, 5));
    runner.endMonitor();
    await new Promise((r) => setTimeout(r, 60)); // its wait ran out with no monitor: it gave up
    const fp = await fw.replace('table inet crosslink {\n}\n');
    await fw.settled();
    t.equal(runner.commits, 4, 'the barrier ahead, one before the load, the load, one after');
    const listings = runner.listings;
    t.same(await fw.observe(), { exists: true, fingerprint: fp }, 'no drift');
    t.equal(runner.listings, listings, 'served from the cache: the gap was proven clean');
  },
);
