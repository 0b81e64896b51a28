// The Linux adapters against real wg, wireguard-go, ip and nft, each case in its own network
// namespace, pass the same contract as the fake host.
import t, { type Test } from 'tap';
import { hostContract, type HostHarness } from '../host.contract.js';
import { createLinuxHost } from './host.js';
import { isRoot, must, NetnsFixture } from './netns.fixture.js';
import { detectWireGuardMode } from './wireguard.js';
import { ProcessRunner } from './run.js';
import { LinuxLinks } from './links.js';
import { renderFirewall } from '../firewall-render.js';
import { manyTuples } from '../firewall.fixture.js';

if (!isRoot()) {
  t.plan(0, 'needs root (network namespaces)');
} else {
  const fx = new NetnsFixture();
  t.teardown(() => fx.cleanup());

  const makeHarness = async (tt: Test): Promise<HostHarness> => {
    const ns = fx.addNetns('c');
    const ifname = fx.ifname('w');
    const host = createLinuxHost({ netns: ns });
    tt.teardown(() => {
      host.close();
      fx.removeNetns(ns, [ifname]);
    });
    const nft = (...args: string[]) => must(['ip', 'netns', 'exec', ns, 'nft', ...args]);
    return {
      host,
      ifname,
      mode: await detectWireGuardMode(new ProcessRunner(), ns),
      backdoor: {
        addForeignRoute: async (prefix) =>
          void must(['ip', '-n', ns, 'route', 'add', prefix, 'dev', 'lo', 'proto', 'static']),
        foreignRoutes: async () => {
          const all = [
            ...(JSON.parse(must(['ip', '-n', ns, '-json', 'route', 'show', 'table', 'main'])) as Array<{
              dst: string;
              protocol?: string;
            }>),
            ...(JSON.parse(must(['ip', '-n', ns, '-json', '-6', 'route', 'show', 'table', 'main'])) as Array<{
              dst: string;
              protocol?: string;
            }>),
          ];
          return all.filter((r) => r.protocol === 'static').map((r) => r.dst);
        },
        deleteFirewallTable: async () => void nft('delete', 'table', 'inet', 'crosslink'),
        tamperFirewall: async (kind) => {
          if (kind === 'rule')
            nft('insert', 'rule', 'inet', 'crosslink', 'forward', 'ip', 'saddr', '192.0.2.66', 'accept');
          else
            nft(
              'delete',
              'element',
              'inet',
              'crosslink',
              'out4_ports',
              '{',
              '10.1.0.0/24',
              '.',
              '10.2.0.0/24',
              '.',
              'tcp',
              '.',
              '8080',
              '}',
            );
        },
        deletePeer: async (ifn, publicKey) =>
          void must(['ip', 'netns', 'exec', ns, 'wg', 'set', ifn, 'peer', publicKey, 'remove']),
        setLinkDown: async (ifn) => void must(['ip', '-n', ns, 'link', 'set', 'dev', ifn, 'down']),
      },
    };
  };

  t.test('Linux host passes the host contract', async (t) => {
    hostContract(t, makeHarness);
  });

  t.test(
    'firewall: with nft monitor, a no-change observe lists nothing; a foreign commit forces a listing',
    async (t) => {
      const ns = fx.addNetns('f');
      const host = createLinuxHost({ netns: ns });
      t.teardown(() => {
        host.close();
        fx.removeNetns(ns);
      });
      await host.firewall.observe(); // starts the monitor; first observe always lists
      await new Promise((r) => setTimeout(r, 300)); // let the monitor subscribe
      const fp = await host.firewall.replace(renderFirewall(manyTuples(100), { wgInterface: 'xl0' }));
      await host.firewall.settled(); // the baseline listing runs in the background
      await new Promise((r) => setTimeout(r, 100)); // our own generation line arrives: not drift
      const before = host.firewall.fullListings;
      for (let i = 0; i < 5; i++) t.same(await host.firewall.observe(), { exists: true, fingerprint: fp });
      t.equal(host.firewall.fullListings, before, 'no listing while nothing changed');
      must(['ip', 'netns', 'exec', ns, 'nft', 'add', 'table', 'inet', 'somebody_else']);
      // The generation line arrives asynchronously (slowly on a loaded machine): poll like a resync.
      const deadline = Date.now() + 5000;
      let seen = await host.firewall.observe();
      while (host.firewall.fullListings === before && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        seen = await host.firewall.observe();
      }
      t.same(seen, { exists: true, fingerprint: fp }, 'another table does not change our fingerprint');
      t.equal(host.firewall.fullListings, before + 1, 'but a foreign commit made it look again');
    },
  );

  t.test(
    'firewall: our own table load never reaches the monitor; a commit by someone else in the gap is drift',
    async (t) => {
      const ns = fx.addNetns('g');
      const inner = new ProcessRunner();
      let monitorLines = 0;
      let intrude = false;
      const runner = {
        run: async (argv: readonly string[], opts?: Parameters<ProcessRunner['run']>[1]) => {
          const r = await inner.run(argv, opts);
          // Someone else commits right after our load, while no monitor watches.
          if (intrude && argv[1] === '-f') {
            intrude = false;
            must([
              'ip',
              'netns',
              'exec',
              ns,
              'nft',
              'insert',
              'rule',
              'inet',
              'crosslink',
              'forward',
              'ip',
              'saddr',
              '192.0.2.66',
              'accept',
            ]);
          }
          return r;
        },
        watch: (
          argv: readonly string[],
          opts: { netns?: string },
          onLine: (line: string) => void,
          onExit: (code: number) => void,
        ) =>
          inner.watch(
            argv,
            opts,
            (line) => {
              monitorLines += 1;
              onLine(line);
            },
            onExit,
          ),
      };
      const host = createLinuxHost({ netns: ns, runner });
      t.teardown(() => {
        host.close();
        fx.removeNetns(ns);
      });
      await host.firewall.observe(); // starts the monitor
      const ruleset = renderFirewall(manyTuples(2000), { wgInterface: 'xl0' });
      const fp = await host.firewall.replace(ruleset);
      await host.firewall.settled();
      // nft 1.0.6 prints each element event with all elements so far: 2,000 tuples would be
      // thousands of lines. Only the barrier transactions (a few lines each) may show.
      t.ok(monitorLines < 40, `the monitor printed ${monitorLines} lines for the load`);
      const before = host.firewall.fullListings;
      t.same(await host.firewall.observe(), { exists: true, fingerprint: fp });
      t.equal(host.firewall.fullListings, before, 'served from the cache: nobody else committed');

      intrude = true;
      const fp2 = await host.firewall.replace(renderFirewall(manyTuples(2001), { wgInterface: 'xl0' }));
      await host.firewall.settled();
      t.equal(intrude, false, 'the foreign commit ran between our load and the new monitor');
      const seen = await host.firewall.observe();
      t.equal(seen.exists, true);
      t.not(seen.fingerprint, fp2, 'the rule inserted in the gap shows as drift');
    },
  );

  t.test(
    "firewall: an observe that finds no table runs the load's first barrier ahead; the gap is still proven clean",
    async (t) => {
      const ns = fx.addNetns('b');
      const inner = new ProcessRunner();
      const commits: string[] = [];
      const runner = {
        run: async (argv: readonly string[], opts?: Parameters<ProcessRunner['run']>[1]) => {
          if (argv[0] === 'nft' && argv[1] !== 'list' && argv[1] !== '-j') commits.push(argv.slice(0, 4).join(' '));
          return inner.run(argv, opts);
        },
        watch: inner.watch.bind(inner),
      };
      const host = createLinuxHost({ netns: ns, runner });
      t.teardown(() => {
        host.close();
        fx.removeNetns(ns);
      });
      t.same(await host.firewall.observe(), { exists: false, fingerprint: '' });
      await new Promise((r) => setTimeout(r, 300)); // the barrier ahead has been seen by the monitor
      const ahead = commits.length;
      t.ok(
        ahead >= 1 && commits.every((c) => c.startsWith('nft add table inet')),
        `barrier(s) ahead: ${commits.join('; ')}`,
      );
      const fp = await host.firewall.replace(renderFirewall(manyTuples(100), { wgInterface: 'xl0' }));
      t.match(commits[ahead], /^nft -f /, 'the load came next, without a barrier of its own');
      await host.firewall.settled();
      const before = host.firewall.fullListings;
      t.same(await host.firewall.observe(), { exists: true, fingerprint: fp });
      t.equal(host.firewall.fullListings, before, 'served from the cache: the gap was proven clean');
    },
  );

  t.test('routes and link: with ip monitor, a no-change observe runs nothing; changes are seen', async (t) => {
    const ns = fx.addNetns('m');
    const ifname = fx.ifname('w');
    const inner = new ProcessRunner();
    const reads: string[] = [];
    const runner = {
      run: (argv: readonly string[], opts?: Parameters<ProcessRunner['run']>[1]) => {
        if (argv.includes('-json')) reads.push(argv.join(' '));
        return inner.run(argv, opts);
      },
      watch: inner.watch.bind(inner),
      startDaemon: inner.startDaemon.bind(inner),
    };
    const host = await fx.hostWithInterface(t, ns, ifname, runner);
    const r = (prefix: string) => ({ prefix, dev: ifname });
    await host.routes.apply({ add: [r('10.3.0.0/24')], del: [] });
    await host.routes.observe(); // starts the monitor
    await new Promise((res) => setTimeout(res, 400)); // settled
    t.same(await host.routes.observe(), [r('10.3.0.0/24')]);
    t.equal((await host.links.observe(ifname)).isUp, true);
    const before = reads.length;
    for (let i = 0; i < 3; i++) {
      t.same(await host.routes.observe(), [r('10.3.0.0/24')]);
      t.equal((await host.links.observe(ifname)).mtu, 1420);
    }
    t.equal(reads.length, before, 'nothing run while nothing changed');

    await host.routes.apply({ add: [r('10.4.0.0/24')], del: [] });
    t.same(await host.routes.observe(), [r('10.3.0.0/24'), r('10.4.0.0/24')], 'our own change is seen at once');
    await new Promise((res) => setTimeout(res, 300)); // its event arrives and is recognised as ours
    t.same(await host.routes.observe(), [r('10.3.0.0/24'), r('10.4.0.0/24')]);
    t.equal((await host.links.observe(ifname)).mtu, 1420);
    t.equal(reads.length, before, 'our own route batch costs no listing: the cache was patched, its event recognised');

    // Behind its back: the event arrives asynchronously; poll like a resync.
    must(['ip', '-n', ns, 'route', 'del', '10.3.0.0/24', 'dev', ifname, 'proto', '147']);
    must(['ip', '-n', ns, 'link', 'set', ifname, 'mtu', '1300']);
    const deadline = Date.now() + 5000;
    let routes = await host.routes.observe();
    let link = await host.links.observe(ifname);
    while ((routes.length !== 1 || link.mtu !== 1300) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      routes = await host.routes.observe();
      link = await host.links.observe(ifname);
    }
    t.same(routes, [r('10.4.0.0/24')], 'a route deleted by hand is seen');
    t.equal(link.mtu, 1300, 'an MTU changed by hand is seen');
  });

  t.test(
    'gateway: a removed gateway is no longer announced (a standby that served for a moment must not keep claiming it)',
    async (t) => {
      const ns = fx.addNetns('g');
      const lan = fx.ifname('l');
      t.teardown(() => fx.removeNetns(ns));
      must(['ip', '-n', ns, 'link', 'add', lan, 'type', 'veth', 'peer', 'name', `${lan}p`]);
      must(['ip', '-n', ns, 'link', 'set', lan, 'up']);
      must(['ip', '-n', ns, 'link', 'set', `${lan}p`, 'up']);
      const inner = new ProcessRunner();
      const announcers: number[] = [];
      const runner = {
        run: inner.run.bind(inner),
        startDaemon: (argv: readonly string[], opts?: Parameters<ProcessRunner['startDaemon']>[1]) => {
          const d = inner.startDaemon(argv, opts);
          if (argv[0] === 'arping') {
            announcers.push(d.pid);
            fx.trackPid(d.pid);
          }
          return d;
        },
      };
      const links = new LinuxLinks({ runner, netns: ns });
      const isAlive = (pid: number) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      const isGoneSoon = async (pid: number) => {
        const deadline = Date.now() + 1000;
        while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        return !isAlive(pid);
      };
      await links.addGateway(lan, '10.9.0.1/24');
      t.equal(announcers.length, 1, 'announced in the background after the first gratuitous ARPs');
      t.ok(isAlive(announcers[0]!), 'still announcing');
      await links.delAddress(lan, '10.9.0.1/24');
      t.ok(await isGoneSoon(announcers[0]!), 'the announcer stops with the address, not seconds later');
      await links.addGateway(lan, '10.9.0.1/24');
      await links.addGateway(lan, '10.9.0.1/24');
      t.equal(announcers.length, 3);
      t.ok(await isGoneSoon(announcers[1]!), 'a second add replaces the announcer: one at a time per address');
      t.ok(isAlive(announcers[2]!), 'the newest one announces');
    },
  );

  t.test('detectWireGuardMode leaves nothing behind', async (t) => {
    const ns = fx.addNetns('d');
    t.teardown(() => fx.removeNetns(ns));
    const mode = await detectWireGuardMode(new ProcessRunner(), ns);
    t.ok(mode === 'kernel' || mode === 'userspace', mode);
    t.same(
      (JSON.parse(must(['ip', '-n', ns, '-json', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname),
      ['lo'],
    );
  });
}
