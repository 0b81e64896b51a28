// The Debian package, installed the way a network engineer installs it: into a fresh Debian 12
// root (debootstrap --variant=minbase), with its dependencies resolved by apt from Debian's archive.
// Then: crosslink --version and crosslink policy check run there, and `crosslink agent …` runs the
// agent bundle (dist/crosslink-agent.cjs) and answers as the full CLI; the units run under systemd
// (the agent's main PID is node running the bundle); an upgrade keeps the admin's edits; remove
// keeps the conffiles and the state; purge removes /etc/crosslink and keeps the state unless
// CROSSLINK_PURGE_STATE=1; nothing of the package is left after that.
//
// nodejs (>= 20): Debian 12 ships nodejs 18, which does not satisfy the dependency. This machine's
// node 20 is itself a Debian package (NodeSource's), so the test repacks that installed package with
// dpkg-repack and installs it in the root next to crosslink: apt then resolves every dependency,
// nodejs included, with nothing forced. Only if this machine's node is not a dpkg package >= 20 does
// the test fall back to copying the node binary in and `dpkg -i --force-depends` (it says so).
//
// Needs root, debootstrap and dpkg-repack (scripts/setup.sh installs them) and Debian's mirror
// (CROSSLINK_DEBIAN_MIRROR, default the host's). The minbase root, with the dependencies' .debs
// downloaded, is cached per day as /var/cache/crosslink-test/bookworm-minbase-YYYYMMDD.tar.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { have, sh, type ShOptions } from './sh.js';

t.setTimeout(25 * 60_000);

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkgJson = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
const version = pkgJson.version;
const cacheDir = process.env.CROSSLINK_TEST_CACHE ?? '/var/cache/crosslink-test';
const mirror = process.env.CROSSLINK_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const securityMirror = process.env.CROSSLINK_DEBIAN_SECURITY_MIRROR ?? 'http://deb.debian.org/debian-security';
// What the package's Depends pull in on a minbase root (nodejs's own Depends included); downloaded
// once into the cached root so a rerun needs no network, but resolved by apt on every run.
// The package's Depends that a minbase root lacks (asserted in its control file, installed before it).
const DEPENDS = ['wireguard-tools', 'nftables', 'iproute2', 'fping', 'iputils-ping', 'iputils-arping', 'libjemalloc2'];
const PREFETCH = ['python3', 'ca-certificates', ...DEPENDS, 'procps', ...BOOT_PACKAGES()];
// Installed next to crosslink so the root can be booted with systemd-nspawn and the units run for
// real (wireguard-go: this kernel may lack the WireGuard module; the units ask for it anyway).
function BOOT_PACKAGES(): string[] {
  return ['systemd', 'systemd-sysv', 'dbus', 'wireguard-go'];
}
const timings: Record<string, number> = {};

function timed<T>(name: string, f: () => T): T {
  const t0 = Date.now();
  try {
    return f();
  } finally {
    timings[name] = Math.round((Date.now() - t0) / 100) / 10;
  }
}

const missing = [
  'debootstrap',
  'dpkg-deb',
  'dpkg-repack',
  'chroot',
  'tar',
  'systemd-nspawn',
  'nsenter',
  'mknod',
].filter((c) => !have(c));
if (process.getuid?.() !== 0) {
  t.fail('needs root: debootstrap, chroot and dpkg in a chroot');
} else if (missing.length) {
  t.fail(`missing tools: ${missing.join(', ')} (make setup installs them)`);
} else {
  main();
}

function main(): void {
  const arch = sh(['dpkg', '--print-architecture']).stdout.trim();
  const deb = join(repo, 'build', `crosslink_${version}_${arch}.deb`);
  const work = mkdtempSync('/tmp/crosslink-deb-test.');
  const root = join(work, 'root');
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive', HOME: '/root' };
  // env -i: the root sees only these variables, not the test runner's (tap adds a NODE_OPTIONS
  // loader to every child's environment, which the root's node could not find).
  const envArgs = (extra?: Record<string, string>) => Object.entries({ ...env, ...extra }).map(([k, v]) => `${k}=${v}`);
  const inRoot = (argv: string[], opts: ShOptions = {}) =>
    sh(['env', '-i', ...envArgs(opts.env), 'chroot', root, ...argv], { ...opts, env: undefined });
  let procMounted = false;
  let nspawnPid = 0;

  const cleanup = () => {
    if (nspawnPid && isAlive(nspawnPid)) {
      process.kill(nspawnPid, 'SIGKILL');
      nspawnPid = 0;
    }
    // Unmount before removing anything, and never let rm cross into a mount.
    if (procMounted || isMounted(join(root, 'proc'))) {
      if (sh(['umount', join(root, 'proc')], { check: false }).code !== 0)
        sh(['umount', '-l', join(root, 'proc')], { check: false });
      procMounted = false;
    }
    if (existsSync(work) && !mountsUnder(work).length) sh(['rm', '-rf', '--one-file-system', work], { check: false });
  };
  const onSignal = (sig: NodeJS.Signals) => {
    cleanup();
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  t.teardown(cleanup);

  // Each step needs the one before; after a failure the rest are skipped, not failed in a cascade.
  let brokenAt = '';
  const step = (name: string, f: (t: Test) => void): void => {
    t.test(name, (t) => {
      if (brokenAt) {
        t.plan(0, `skipped: "${brokenAt}" failed`);
        return;
      }
      try {
        f(t);
      } catch (err) {
        brokenAt = name;
        throw err;
      }
      if (t.counts.fail) brokenAt = name;
      t.end();
    });
  };

  step('package builds (or build/ is fresh)', (t) => {
    t.ok(existsSync(join(repo, 'dist/cli/main.js')), 'dist/ exists (make build)');
    if (!isFresh(deb)) {
      const r = timed('build-deb', () => sh(['bash', 'scripts/build-deb.sh'], { cwd: repo }));
      t.comment(r.stdout.trim().split('\n').pop() ?? '');
    } else {
      t.comment(`using ${deb} (newer than its inputs)`);
    }
    t.ok(existsSync(deb), `${deb} exists`);
    const info = sh(['dpkg-deb', '-f', deb, 'Package', 'Version', 'Architecture', 'Depends', 'Recommends']).stdout;
    t.match(info, /^Package: crosslink$/m);
    t.match(info, new RegExp(`^Version: ${version.replace(/\./g, '\\.')}$`, 'm'));
    t.match(info, /^Depends: .*nodejs \(>= 20\)/m);
    for (const d of DEPENDS) t.match(info, new RegExp(`^Depends: .*\\b${d}\\b`, 'm'), `depends on ${d}`);
    t.match(info, /^Recommends: .*wireguard-go/m);
    const conffiles = sh(['sh', '-c', `dpkg-deb --ctrl-tarfile "${deb}" | tar -xO ./conffiles`])
      .stdout.trim()
      .split('\n')
      .sort();
    t.same(
      conffiles,
      ['/etc/crosslink/agent.yaml', '/etc/crosslink/check.env', '/etc/crosslink/controller.yaml'],
      'the example configs are conffiles',
    );
    const files = sh(['dpkg-deb', '-c', deb]).stdout;
    for (const f of [
      './usr/bin/crosslink',
      './usr/lib/crosslink/dist/cli/main.js',
      './usr/lib/crosslink/dist/crosslink-agent.cjs',
      './usr/lib/crosslink/package.json',
      './lib/systemd/system/crosslink-agent.service',
      './lib/systemd/system/crosslink-controller.service',
      './lib/systemd/system/crosslink-check.service',
      './lib/systemd/system/crosslink-check.timer',
      './usr/lib/crosslink/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
    ]) {
      t.match(files, new RegExp(` ${f.replace(/[.]/g, '\\.')}$`, 'm'), `ships ${f}`);
    }
    t.notMatch(
      files,
      / \.\/usr\/lib\/crosslink\/node_modules\/(tap|eslint|typescript-eslint|@bufbuild\/buf)\//,
      'no dev dependencies',
    );
    t.match(
      files,
      /^drwxr-xr-x root\/root +0 [^ ]+ [^ ]+ \.\/$/m,
      "package root directory is 0755 (it becomes the target's /)",
    );
    t.comment(`package size: ${(statSync(deb).size / 1048576).toFixed(1)} MiB`);
  });

  step('a fresh Debian 12 root', (t) => {
    const tarball = timed('base-root', () => baseRootTarball());
    timed('extract-root', () => {
      mkdirSync(root);
      sh(['tar', '-C', root, '-xf', tarball]);
    });
    sh(['mount', '-t', 'proc', 'proc', join(root, 'proc')]);
    procMounted = true;
    // As in any chroot: no daemon may be started from a maintainer script.
    writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    t.notOk(existsSync(join(root, 'usr/bin/node')), 'no node in the fresh root');
    t.notOk(existsSync(join(root, 'run/systemd/system')), 'not booted with systemd (postinst must not call systemctl)');
  });

  step('install with apt, dependencies resolved from Debian', (t) => {
    copyFileSync(deb, join(root, 'tmp/crosslink.deb'));
    const nodeDeb = timed('nodejs-deb', () => nodejsDeb(work));
    let out: string;
    if (nodeDeb) {
      copyFileSync(nodeDeb, join(root, 'tmp/nodejs.deb'));
      out = timed('apt-install', () =>
        inRoot([
          'apt-get',
          'install',
          '-y',
          '--no-install-recommends',
          '/tmp/nodejs.deb',
          '/tmp/crosslink.deb',
          ...BOOT_PACKAGES(),
        ]),
      ).stdout;
    } else {
      t.comment("FALLBACK: this machine's node is not a dpkg package >= 20; node copied in, nodejs dependency forced");
      copyFileSync(realpathSync(process.execPath), join(root, 'usr/bin/node'));
      inRoot(['apt-get', 'install', '-y', '--no-install-recommends', ...DEPENDS, 'procps']);
      out = inRoot(['dpkg', '-i', '--force-depends', '/tmp/crosslink.deb']).stdout;
    }
    t.match(out, /No service has been enabled or started/, 'postinst says nothing was started');
    t.match(inRoot(['dpkg-query', '-W', '-f', '${Status}', 'crosslink']).stdout, 'install ok installed');
    t.same(
      inRoot(['sh', '-c', 'ls /etc/systemd/system/*.wants/ 2>/dev/null | grep crosslink || true']).stdout.trim(),
      '',
      'no unit enabled',
    );
    const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
    const user = passwd.split('\n').find((l) => l.startsWith('crosslink:'));
    t.ok(user, 'system user crosslink created');
    const uid = Number(user?.split(':')[2]);
    t.ok(uid > 0 && uid < 1000, `crosslink is a system user (uid ${uid})`);
    for (const d of ['var/lib/crosslink', 'var/lib/crosslink/agent', 'var/lib/crosslink/controller']) {
      const s = statSync(join(root, d));
      t.equal((s.mode & 0o777).toString(8), '700', `/${d} is 0700`);
      t.equal(s.uid, uid, `/${d} is owned by crosslink`);
    }
    for (const [f, want] of [
      ['agent.yaml', 'root:crosslink 640'],
      ['controller.yaml', 'root:crosslink 640'],
      ['check.env', 'root:root 600'],
    ]) {
      t.equal(
        inRoot(['stat', '-c', '%U:%G %a', `/etc/crosslink/${f}`]).stdout.trim(),
        want,
        `/etc/crosslink/${f} is ${want}`,
      );
    }
    // The example configs as shipped are valid for the installed program.
    const ac = inRoot(['crosslink', 'agent', 'config', 'check', '--config', '/etc/crosslink/agent.yaml'], {
      check: false,
    });
    t.equal(ac.code, 0, 'crosslink agent config check accepts the shipped agent.yaml', { out: ac.stdout + ac.stderr });
    const cc = inRoot(['crosslink', 'controller', 'config', 'check', '--config', '/etc/crosslink/controller.yaml'], {
      check: false,
    });
    t.equal(cc.code, 0, 'crosslink controller config check accepts the shipped controller.yaml', {
      out: cc.stdout + cc.stderr,
    });
    t.equal(inRoot(['sh', '-c', 'readlink -f "$(command -v crosslink)"']).stdout.trim(), '/usr/bin/crosslink');
  });

  t.test('crosslink runs in the root', (t) => {
    if (brokenAt) {
      t.plan(0, `skipped: "${brokenAt}" failed`);
      return;
    }
    const v = timed('crosslink-version', () => inRoot(['crosslink', '--version']));
    t.equal(v.stdout.trim(), version, `crosslink --version prints ${version}`);
    t.equal(inRoot(['crosslink', '--help'], { check: false }).code, 0, 'crosslink --help exits 0');
    // `crosslink agent …` runs the agent bundle (the wrapper's choice); it answers as the full CLI.
    const viaFull = (args: string[]) =>
      inRoot(['node', '/usr/lib/crosslink/dist/cli/main.js', ...args], { check: false });
    const viaBundle = (args: string[]) =>
      inRoot(['node', '/usr/lib/crosslink/dist/crosslink-agent.cjs', ...args], { check: false });
    for (const args of [
      ['agent', '--help'],
      ['agent', 'run', '--help'],
      ['agent', 'nope'],
      ['agent', '--version'],
    ]) {
      const a = viaFull(args);
      const b = inRoot(['crosslink', ...args], { check: false });
      t.same(
        b,
        a,
        `crosslink ${args.join(' ')}: exit ${a.code}, the same from the wrapper (agent bundle) as from dist/cli/main.js`,
      );
      t.same(viaBundle(args), a, `and from node dist/crosslink-agent.cjs ${args.join(' ')}`);
    }
    t.match(
      inRoot(['cat', '/usr/bin/crosslink']).stdout,
      /exec \/usr\/bin\/node \/usr\/lib\/crosslink\/dist\/crosslink-agent\.cjs "\$@"/,
      'the wrapper runs the bundle for agent commands',
    );
    const example = '/usr/share/doc/crosslink/examples/leeds.yaml';
    t.ok(existsSync(join(root, example)), `${example} is shipped`);
    for (const f of ['/usr/share/man/man1/crosslink.1.gz', '/usr/share/bash-completion/completions/crosslink'])
      t.ok(existsSync(join(root, f)), `${f} is shipped`);
    const man = inRoot(['sh', '-c', 'zcat /usr/share/man/man1/crosslink.1.gz'], { check: false }).stdout;
    t.match(man, /^\.TH CROSSLINK 1 /, 'crosslink(1) is a man page');
    t.match(man, /\n\.SH CROSSLINK POLICY APPLY\n/, 'built from the commands: every subcommand has its section');
    const pc = inRoot(['crosslink', 'policy', 'check', '-f', example], { check: false });
    t.equal(pc.code, 0, `crosslink policy check -f ${example} exits 0`, { stdout: pc.stdout, stderr: pc.stderr });
    t.comment(`policy check: ${(pc.stdout + pc.stderr).trim().split('\n').slice(0, 5).join(' | ')}`);
    // The native module is loaded by the installed node, as the controller will load it.
    const sqlite = inRoot(
      [
        'node',
        '-e',
        'const D=require("/usr/lib/crosslink/node_modules/better-sqlite3");console.log(new D(":memory:").prepare("select sqlite_version() v").get().v)',
      ],
      { check: false },
    );
    t.equal(sqlite.code, 0, `better-sqlite3 loads in the root (SQLite ${sqlite.stdout.trim()})`, {
      stderr: sqlite.stderr,
    });
    t.end();
  });

  // The units for real: boot the root with systemd-nspawn (its own network namespace, so nothing
  // touches this machine's network), start the controller and the agent from the shipped units
  // with their sandboxes, enroll the agent with a join token from that controller, and check the
  // agent applied its config as the unprivileged crosslink user.
  step('the shipped units run under systemd (nspawn boot): controller serves, agent enrolls', (t) => {
    if (!have('systemd-nspawn') || !have('nsenter')) {
      t.fail('systemd-nspawn missing (package systemd-container; make setup installs it)');
      return;
    }
    sh(['umount', join(root, 'proc')]);
    procMounted = false;
    // This machine may have no udev, leaving /dev/net/tun 0600; Debian's udev makes it 0666, which
    // wireguard-go needs when it runs as the crosslink user. A private node with Debian's mode.
    const tun = join(work, 'tun');
    sh(['mknod', '-m', '0666', tun, 'c', '10', '200']);
    writeFileSync(join(root, 'etc/hostname'), 'xlbox\n');
    writeFileSync(join(root, 'etc/hosts'), '127.0.0.1 localhost xlbox\n');
    const log = join(work, 'nspawn.log');
    const child = spawn(
      'systemd-nspawn',
      [
        '-D',
        root,
        '-b',
        '--private-network',
        '--register=no',
        '--keep-unit',
        `--bind=${tun}:/dev/net/tun`,
        '-M',
        'xlbox',
      ],
      { detached: true, stdio: ['ignore', openSync(log, 'w'), openSync(log, 'a')], env: { PATH: env.PATH } },
    );
    nspawnPid = child.pid ?? 0;
    child.unref();
    const leader = waitFor(60_000, () => childPid(nspawnPid));
    t.ok(leader, 'container booted', { log: leader ? '' : tail(log) });
    if (!leader) return;
    const inBox = (argv: string[], opts: ShOptions = {}) =>
      sh(['nsenter', '-t', String(leader), '-m', '-u', '-i', '-n', '-p', 'env', '-i', ...envArgs(opts.env), ...argv], {
        ...opts,
        env: undefined,
      });
    waitFor(
      60_000,
      () => /running|degraded/.test(inBox(['systemctl', 'is-system-running'], { check: false }).stdout) || null,
    );
    timed('boot-controller', () => {
      inBox(['systemctl', 'start', 'crosslink-controller']);
      waitFor(
        90_000,
        () =>
          (existsSync(join(root, 'var/lib/crosslink/controller/admin.token')) &&
            inBox(['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/8443'], { check: false }).code === 0) ||
          null,
      );
    });
    const ctl = inBox(['systemctl', 'show', '-p', 'ActiveState', '-p', 'User', 'crosslink-controller']).stdout;
    t.match(ctl, /ActiveState=active/, 'crosslink-controller is active', {
      journal: ctl.includes('active')
        ? ''
        : inBox(['journalctl', '-u', 'crosslink-controller', '-o', 'cat', '--no-pager'], { check: false }).stdout.slice(
            -2000,
          ),
    });
    const caPem = readFileSync(join(root, 'var/lib/crosslink/controller/ca.crt'), 'utf8');
    const fingerprint = createHash('sha256').update(new X509Certificate(caPem).raw).digest('hex');
    const api = {
      CROSSLINK_CONTROLLER: 'https://127.0.0.1:8443',
      CROSSLINK_CA_FINGERPRINT: fingerprint,
      CROSSLINK_TOKEN: readFileSync(join(root, 'var/lib/crosslink/controller/admin.token'), 'utf8').trim(),
    };
    const jt = JSON.parse(
      inBox(['crosslink', 'join-token', 'create', '--name', 'xlbox', '--json'], { env: api }).stdout,
    ) as { token: string };
    t.match(jt.token, /^xljoin1\./, 'join token made by the controller in the box');
    const agentYaml = join(root, 'etc/crosslink/agent.yaml');
    writeFileSync(
      agentYaml,
      readFileSync(agentYaml, 'utf8')
        .replace(/^join: ""$/m, `join: "${jt.token}"`)
        .replace(/^advertise: \[\]$/m, 'advertise: [10.99.1.0/24]')
        .replace(/^wireguard: auto$/m, 'wireguard: userspace'),
    );
    timed('boot-agent', () => {
      inBox(['systemctl', 'start', 'crosslink-agent']);
      waitFor(90_000, () => inBox(['crosslink', 'agent', 'status'], { check: false }).code === 0 || null);
    });
    const status = inBox(['crosslink', 'agent', 'status'], { check: false });
    t.equal(status.code, 0, 'crosslink agent status: connected and fully applied', {
      status: status.stdout + status.stderr,
      journal: status.code
        ? inBox(['journalctl', '-u', 'crosslink-agent', '-o', 'cat', '--no-pager'], { check: false }).stdout.slice(
            -3000,
          )
        : '',
    });
    t.match(status.stdout, /controller +connected/);
    const procs = inBox(['ps', '-o', 'user:20=,args=', '-u', 'crosslink'], { check: false }).stdout;
    t.match(
      procs,
      /crosslink +\/usr\/bin\/node \/usr\/lib\/crosslink\/dist\/cli\/main\.js controller serve/,
      'controller runs as crosslink',
    );
    t.match(
      procs,
      /crosslink +\/usr\/bin\/node \/usr\/lib\/crosslink\/dist\/crosslink-agent\.cjs agent run/,
      'agent runs as crosslink, from the agent bundle',
    );
    const agentPid = inBox(['systemctl', 'show', '-p', 'MainPID', '--value', 'crosslink-agent']).stdout.trim();
    const cmdline = inBox(['cat', `/proc/${agentPid}/cmdline`])
      .stdout.split('\0')
      .filter(Boolean);
    t.same(
      cmdline.slice(0, 4),
      ['/usr/bin/node', '/usr/lib/crosslink/dist/crosslink-agent.cjs', 'agent', 'run'],
      "the unit's main PID is node running the agent bundle (the wrapper exec'd it)",
    );
    t.comment(`agent RSS (no peers): ${inBox(['grep', '^VmRSS', `/proc/${agentPid}/status`]).stdout.trim()}`);
    t.match(
      inBox(['cat', `/proc/${agentPid}/maps`]).stdout,
      /libjemalloc\.so\.2/,
      "the agent runs on jemalloc (the unit's LD_PRELOAD found the Depends' library)",
    );
    t.match(procs, /crosslink +wireguard-go crosslink0/, 'wireguard-go runs as crosslink');
    t.match(
      inBox([
        'grep',
        '^CapEff',
        `/proc/${inBox(['systemctl', 'show', '-p', 'MainPID', '--value', 'crosslink-agent']).stdout.trim()}/status`,
      ]).stdout,
      /0000000000003000/,
      'agent holds exactly CAP_NET_ADMIN and CAP_NET_RAW',
    );
    t.match(
      inBox(['ip', '-br', 'addr', 'show', 'crosslink0']).stdout,
      /100\.64\.\d+\.\d+\/10/,
      'overlay interface up with its overlay address',
    );
    t.equal(
      inBox(['nft', 'list', 'table', 'inet', 'crosslink'], { check: false }).code,
      0,
      'nft table inet crosslink installed',
    );
    t.equal(
      inBox(['sysctl', '-n', 'net.ipv4.ip_forward']).stdout.trim(),
      '1',
      'forwarding switched on through the writable /proc/sys/net',
    );
    inBox(['systemctl', 'stop', 'crosslink-agent']);
    t.match(
      inBox(['ip', '-br', 'link']).stdout,
      /crosslink0/,
      'stopping the agent leaves the data plane: wireguard-go and its interface stay',
    );
    t.equal(inBox(['nft', 'list', 'table', 'inet', 'crosslink'], { check: false }).code, 0, 'and the nft table stays');
    inBox(['systemctl', 'start', 'crosslink-agent']);
    const back = waitFor(60_000, () =>
      inBox(['crosslink', 'agent', 'status'], { check: false }).code === 0 ? true : null,
    );
    t.ok(back, 'a restarted agent adopts the running interface and is connected and applied again');
    // As `crosslink agent down --help` says: stop the service first (a running
    // agent puts back what `down` removed, as it should for any drift).
    inBox(['systemctl', 'stop', 'crosslink-agent']);
    const down = inBox(['crosslink', 'agent', 'down'], { check: false });
    t.equal(down.code, 0, `crosslink agent down: ${down.stdout}${down.stderr}`);
    inBox(['systemctl', 'stop', 'crosslink-controller']);
    t.notMatch(
      inBox(['ip', '-br', 'link']).stdout,
      /crosslink0/,
      '`crosslink agent down` removes the interface (and wireguard-go with it)',
    );
    process.kill(nspawnPid, 'SIGTERM'); // nspawn powers the container off
    const gone = waitFor(60_000, () => (isAlive(nspawnPid) ? null : true));
    if (!gone) process.kill(nspawnPid, 'SIGKILL');
    t.ok(gone, 'container powered off');
    nspawnPid = 0;
    sh(['mount', '-t', 'proc', 'proc', join(root, 'proc')]);
    procMounted = true;
  });

  step("upgrade keeps the administrator's edits and the state", (t) => {
    writeFileSync(
      join(root, 'etc/crosslink/agent.yaml'),
      readFileSync(join(root, 'etc/crosslink/agent.yaml'), 'utf8').replace(/^name: ""$/m, 'name: leeds-gi-edge-1'),
    );
    writeFileSync(join(root, 'var/lib/crosslink/agent/marker'), 'state\n');
    const newer = timed('upgrade-deb', () => bumpedPackage(deb, work, `${version}+upgradetest1`));
    copyFileSync(newer, join(root, 'tmp/crosslink-newer.deb'));
    const out = inRoot(['dpkg', '-i', '/tmp/crosslink-newer.deb']);
    t.notMatch(out.stdout, /No service has been enabled/, 'no first-install message on upgrade');
    t.match(inRoot(['dpkg-query', '-W', '-f', '${Version}', 'crosslink']).stdout, `${version}+upgradetest1`);
    t.match(
      readFileSync(join(root, 'etc/crosslink/agent.yaml'), 'utf8'),
      /^name: leeds-gi-edge-1$/m,
      'edited conffile kept',
    );
    t.match(
      readFileSync(join(root, 'etc/crosslink/controller.yaml'), 'utf8'),
      /# upgrade test$/m,
      'unedited conffile takes the new version',
    );
    t.equal(
      inRoot(['stat', '-c', '%U:%G %a', '/etc/crosslink/agent.yaml']).stdout.trim(),
      'root:crosslink 640',
      'stat override kept',
    );
    t.ok(existsSync(join(root, 'var/lib/crosslink/agent/marker')), 'state kept');
  });

  step('remove keeps conffiles and state; purge removes /etc/crosslink and keeps state', (t) => {
    inRoot(['dpkg', '-r', 'crosslink']);
    for (const gone of ['usr/bin/crosslink', 'usr/lib/crosslink', 'lib/systemd/system/crosslink-agent.service'])
      t.notOk(existsSync(join(root, gone)), `/${gone} removed`);
    t.ok(existsSync(join(root, 'etc/crosslink/agent.yaml')), 'conffile kept on remove');
    t.ok(existsSync(join(root, 'var/lib/crosslink/agent/marker')), 'state kept on remove');
    const purge = inRoot(['dpkg', '-P', 'crosslink']);
    t.notOk(existsSync(join(root, 'etc/crosslink')), '/etc/crosslink removed on purge');
    t.ok(existsSync(join(root, 'var/lib/crosslink/agent/marker')), 'state kept on purge by default');
    t.match(purge.stdout + purge.stderr, /kept \/var\/lib\/crosslink/, 'purge says it kept the state');
    t.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^crosslink:/m, 'user kept with the state it owns');
    t.equal(
      inRoot(['dpkg-statoverride', '--list'], { check: false }).stdout.includes('/etc/crosslink'),
      false,
      'stat overrides removed',
    );
  });

  step('purge with CROSSLINK_PURGE_STATE=1 leaves nothing', (t) => {
    inRoot(['dpkg', '-i', '/tmp/crosslink.deb']);
    t.ok(existsSync(join(root, 'var/lib/crosslink/agent/marker')), 'reinstall finds the kept state');
    const purge = inRoot(['dpkg', '-P', 'crosslink'], { env: { CROSSLINK_PURGE_STATE: '1' } });
    t.match(purge.stdout, /removed \/var\/lib\/crosslink/);
    t.notOk(existsSync(join(root, 'var/lib/crosslink')), '/var/lib/crosslink removed');
    t.notOk(existsSync(join(root, 'etc/crosslink')), '/etc/crosslink removed');
    t.notMatch(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^crosslink:/m, 'user removed');
    t.notMatch(readFileSync(join(root, 'etc/group'), 'utf8'), /^crosslink:/m, 'group removed');
    const left = sh(['dpkg-deb', '-c', deb])
      .stdout.split('\n')
      .map((l) =>
        l
          .split(/\s+/)
          .slice(5)
          .join(' ')
          .replace(/^\.\//, '')
          .replace(/ -> .*$/, '')
          .replace(/\/$/, ''),
      )
      .filter((p) => /crosslink/.test(p) && existsSync(join(root, p)));
    t.same(left, [], 'no file or directory of the package is left');
  });

  t.test('test root removed', (t) => {
    cleanup();
    t.same(mountsUnder(work), [], 'nothing left mounted under the test root');
    t.notOk(existsSync(work), `${work} removed`);
    t.comment(`timings (s): ${JSON.stringify(timings)}`);
    t.end();
  });

  function baseRootTarball(): string {
    mkdirSync(cacheDir, { recursive: true });
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
    const tarball = join(cacheDir, `bookworm-minbase-${day}.tar`);
    if (existsSync(tarball)) return tarball;
    const base = join(work, 'base');
    sh(['debootstrap', '--variant=minbase', 'bookworm', base, mirror], { timeoutMs: 900_000 });
    writeFileSync(
      join(base, 'etc/apt/sources.list'),
      `deb ${mirror} bookworm main\ndeb ${mirror} bookworm-updates main\ndeb ${securityMirror} bookworm-security main\n`,
    );
    sh(['env', '-i', ...envArgs(), 'chroot', base, 'apt-get', 'update', '-qq']);
    sh([
      'env',
      '-i',
      ...envArgs(),
      'chroot',
      base,
      'apt-get',
      'install',
      '-y',
      '-qq',
      '--download-only',
      '--no-install-recommends',
      ...PREFETCH,
    ]);
    sh(['tar', '-C', base, '--one-file-system', '-cf', `${tarball}.tmp`, '.']);
    renameSync(`${tarball}.tmp`, tarball);
    for (const old of readdirSync(cacheDir)) {
      if (/^bookworm-minbase-\d{8}\.tar$/.test(old) && join(cacheDir, old) !== tarball) rmSync(join(cacheDir, old));
    }
    sh(['rm', '-rf', '--one-file-system', base]);
    return tarball;
  }
}

/** Polls `f` (synchronously, every 500 ms) until it returns non-null or `ms` pass. */
function waitFor<T>(ms: number, f: () => T | null): T | null {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== null && v !== false) return v;
    if (Date.now() > end) return null;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  }
}

/** The first child process of `pid` (systemd-nspawn's child is the container's init). */
function childPid(pid: number): number | null {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids.length ? Number(kids[0]) : null;
  } catch {
    return null;
  }
}

/** Running, not a zombie: the test blocks its event loop while polling, so node has not reaped
 *  an exited child yet and kill(pid, 0) alone would still succeed. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '';
  }
}

/** This machine's nodejs package, repacked from the installed files (cached per version), or null
 *  when node is not a dpkg package of version 20 or later. */
function nodejsDeb(work: string): string | null {
  const owner = sh(['dpkg', '-S', realpathSync(process.execPath)], { check: false });
  const pkg = owner.code === 0 ? owner.stdout.split(':')[0]!.trim() : '';
  if (pkg !== 'nodejs') return null;
  const ver = sh(['dpkg-query', '-W', '-f', '${Version}', 'nodejs']).stdout.trim();
  if (sh(['dpkg', '--compare-versions', ver, 'ge', '20'], { check: false }).code !== 0) return null;
  const cached = join(cacheDir, `nodejs_${ver.replace(/[^A-Za-z0-9.+~-]/g, '_')}_repack.deb`);
  if (existsSync(cached)) return cached;
  const dir = mkdtempSync(join(work, 'repack.'));
  sh(['dpkg-repack', '--deb-option=-Zgzip', '--deb-option=-z1', 'nodejs'], { cwd: dir });
  const built = readdirSync(dir).find((f) => f.endsWith('.deb'));
  if (!built) throw new Error('dpkg-repack made no .deb');
  mkdirSync(cacheDir, { recursive: true });
  copyFileSync(join(dir, built), `${cached}.tmp`);
  renameSync(`${cached}.tmp`, cached);
  return cached;
}

/** The same package with a higher version and a changed controller.yaml, to test an upgrade. */
function bumpedPackage(deb: string, work: string, newVersion: string): string {
  const dir = join(work, 'bumped');
  sh(['dpkg-deb', '-R', deb, dir]);
  const control = join(dir, 'DEBIAN/control');
  writeFileSync(control, readFileSync(control, 'utf8').replace(/^Version: .*$/m, `Version: ${newVersion}`));
  const cfg = join(dir, 'etc/crosslink/controller.yaml');
  writeFileSync(cfg, `${readFileSync(cfg, 'utf8')}# upgrade test\n`);
  const out = join(work, 'crosslink-newer.deb');
  sh(['dpkg-deb', '--root-owner-group', '-Zgzip', '-z1', '--build', dir, out]);
  sh(['rm', '-rf', dir]);
  return out;
}

/** build/…deb is newer than everything it is made from. */
function isFresh(deb: string): boolean {
  if (!existsSync(deb)) return false;
  const debTime = statSync(deb).mtimeMs;
  const inputs = sh(
    [
      'sh',
      '-c',
      'find dist deploy docs examples scripts/build-deb.sh package.json package-lock.json -type f 2>/dev/null',
    ],
    { cwd: repo, check: false },
  )
    .stdout.split('\n')
    .filter(Boolean);
  return inputs.every((f) => statSync(join(repo, f)).mtimeMs <= debTime);
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

function isMounted(dir: string): boolean {
  return mountsUnder(dir).includes(dir);
}
