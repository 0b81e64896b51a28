// The Debian package, installed the way a network engineer installs it: into a fresh Debian 12
// root (debootstrap --variant=minbase), with its dependencies resolved by apt from Debian's archive.
// Then: crosslink --version and crosslink policy check run there; an upgrade keeps the admin's
// edits; remove keeps the conffiles and the state; purge removes /etc/crosslink and keeps the state
// unless CROSSLINK_PURGE_STATE=1; nothing of the package is left after that.
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
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
const PREFETCH = ['python3', 'ca-certificates', 'wireguard-tools', 'nftables', 'iproute2', 'procps'];
const timings: Record<string, number> = {};

function timed<T>(name: string, f: () => T): T {
  const t0 = Date.now();
  try {
    return f();
  } finally {
    timings[name] = Math.round((Date.now() - t0) / 100) / 10;
  }
}

const missing = ['debootstrap', 'dpkg-deb', 'dpkg-repack', 'chroot', 'tar'].filter((c) => !have(c));
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
  const inRoot = (argv: string[], opts: ShOptions = {}) => sh(['env', '-i', ...envArgs(opts.env), 'chroot', root, ...argv], { ...opts, env: undefined });
  let procMounted = false;

  const cleanup = () => {
    // Unmount before removing anything, and never let rm cross into a mount.
    if (procMounted || isMounted(join(root, 'proc'))) {
      if (sh(['umount', join(root, 'proc')], { check: false }).code !== 0) sh(['umount', '-l', join(root, 'proc')], { check: false });
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
  const step = (name: string, f: (t: Test) => void) =>
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
    for (const d of ['wireguard-tools', 'nftables', 'iproute2']) t.match(info, new RegExp(`^Depends: .*\\b${d}\\b`, 'm'), `depends on ${d}`);
    t.match(info, /^Recommends: .*wireguard-go/m);
    const conffiles = sh(['sh', '-c', `dpkg-deb --ctrl-tarfile "${deb}" | tar -xO ./conffiles`]).stdout.trim().split('\n').sort();
    t.same(conffiles, ['/etc/crosslink/agent.yaml', '/etc/crosslink/check.env', '/etc/crosslink/controller.yaml'], 'the example configs are conffiles');
    const files = sh(['dpkg-deb', '-c', deb]).stdout;
    for (const f of ['./usr/bin/crosslink', './usr/lib/crosslink/dist/cli/main.js', './usr/lib/crosslink/package.json',
      './lib/systemd/system/crosslink-agent.service', './lib/systemd/system/crosslink-controller.service',
      './lib/systemd/system/crosslink-check.service', './lib/systemd/system/crosslink-check.timer',
      './usr/lib/crosslink/node_modules/better-sqlite3/build/Release/better_sqlite3.node']) {
      t.match(files, new RegExp(` ${f.replace(/[.]/g, '\\.')}$`, 'm'), `ships ${f}`);
    }
    t.notMatch(files, / \.\/usr\/lib\/crosslink\/node_modules\/(tap|eslint|typescript-eslint|@bufbuild\/buf)\//, 'no dev dependencies');
    t.match(files, /^drwxr-xr-x root\/root +0 [^ ]+ [^ ]+ \.\/$/m, 'package root directory is 0755 (it becomes the target\'s /)');
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
      out = timed('apt-install', () => inRoot(['apt-get', 'install', '-y', '--no-install-recommends', '/tmp/nodejs.deb', '/tmp/crosslink.deb'])).stdout;
    } else {
      t.comment('FALLBACK: this machine\'s node is not a dpkg package >= 20; node copied in, nodejs dependency forced');
      copyFileSync(realpathSync(process.execPath), join(root, 'usr/bin/node'));
      inRoot(['apt-get', 'install', '-y', '--no-install-recommends', 'wireguard-tools', 'nftables', 'iproute2', 'procps']);
      out = inRoot(['dpkg', '-i', '--force-depends', '/tmp/crosslink.deb']).stdout;
    }
    t.match(out, /No service has been enabled or started/, 'postinst says nothing was started');
    t.match(inRoot(['dpkg-query', '-W', '-f', '${Status}', 'crosslink']).stdout, 'install ok installed');
    t.same(inRoot(['sh', '-c', 'ls /etc/systemd/system/*.wants/ 2>/dev/null | grep crosslink || true']).stdout.trim(), '', 'no unit enabled');
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
    for (const [f, want] of [['agent.yaml', 'root:crosslink 640'], ['controller.yaml', 'root:crosslink 640'], ['check.env', 'root:root 600']]) {
      t.equal(inRoot(['stat', '-c', '%U:%G %a', `/etc/crosslink/${f}`]).stdout.trim(), want, `/etc/crosslink/${f} is ${want}`);
    }
    // The example configs as shipped are valid for the installed program.
    const ac = inRoot(['crosslink', 'agent', 'config', 'check', '--config', '/etc/crosslink/agent.yaml'], { check: false });
    t.equal(ac.code, 0, 'crosslink agent config check accepts the shipped agent.yaml', { out: ac.stdout + ac.stderr });
    const cc = inRoot(['crosslink', 'controller', 'config', 'check', '--config', '/etc/crosslink/controller.yaml'], { check: false });
    t.equal(cc.code, 0, 'crosslink controller config check accepts the shipped controller.yaml', { out: cc.stdout + cc.stderr });
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
    const example = '/usr/share/doc/crosslink/examples/leeds.yaml';
    t.ok(existsSync(join(root, example)), `${example} is shipped`);
    const pc = inRoot(['crosslink', 'policy', 'check', '-f', example], { check: false });
    t.equal(pc.code, 0, `crosslink policy check -f ${example} exits 0`, { stdout: pc.stdout, stderr: pc.stderr });
    t.comment(`policy check: ${(pc.stdout + pc.stderr).trim().split('\n').slice(0, 5).join(' | ')}`);
    // The native module is loaded by the installed node, as the controller will load it.
    const sqlite = inRoot(['node', '-e', 'const D=require("/usr/lib/crosslink/node_modules/better-sqlite3");console.log(new D(":memory:").prepare("select sqlite_version() v").get().v)'], { check: false });
    t.equal(sqlite.code, 0, `better-sqlite3 loads in the root (SQLite ${sqlite.stdout.trim()})`, { stderr: sqlite.stderr });
    t.end();
  });

  step('upgrade keeps the administrator\'s edits and the state', (t) => {
    writeFileSync(join(root, 'etc/crosslink/agent.yaml'), readFileSync(join(root, 'etc/crosslink/agent.yaml'), 'utf8').replace(/^name: ""$/m, 'name: leeds-gi-edge-1'));
    writeFileSync(join(root, 'var/lib/crosslink/agent/marker'), 'state\n');
    const newer = timed('upgrade-deb', () => bumpedPackage(deb, work, `${version}+upgradetest1`));
    copyFileSync(newer, join(root, 'tmp/crosslink-newer.deb'));
    const out = inRoot(['dpkg', '-i', '/tmp/crosslink-newer.deb']);
    t.notMatch(out.stdout, /No service has been enabled/, 'no first-install message on upgrade');
    t.match(inRoot(['dpkg-query', '-W', '-f', '${Version}', 'crosslink']).stdout, `${version}+upgradetest1`);
    t.match(readFileSync(join(root, 'etc/crosslink/agent.yaml'), 'utf8'), /^name: leeds-gi-edge-1$/m, 'edited conffile kept');
    t.match(readFileSync(join(root, 'etc/crosslink/controller.yaml'), 'utf8'), /# upgrade test$/m, 'unedited conffile takes the new version');
    t.equal(inRoot(['stat', '-c', '%U:%G %a', '/etc/crosslink/agent.yaml']).stdout.trim(), 'root:crosslink 640', 'stat override kept');
    t.ok(existsSync(join(root, 'var/lib/crosslink/agent/marker')), 'state kept');
  });

  step('remove keeps conffiles and state; purge removes /etc/crosslink and keeps state', (t) => {
    inRoot(['dpkg', '-r', 'crosslink']);
    for (const gone of ['usr/bin/crosslink', 'usr/lib/crosslink', 'lib/systemd/system/crosslink-agent.service']) t.notOk(existsSync(join(root, gone)), `/${gone} removed`);
    t.ok(existsSync(join(root, 'etc/crosslink/agent.yaml')), 'conffile kept on remove');
    t.ok(existsSync(join(root, 'var/lib/crosslink/agent/marker')), 'state kept on remove');
    const purge = inRoot(['dpkg', '-P', 'crosslink']);
    t.notOk(existsSync(join(root, 'etc/crosslink')), '/etc/crosslink removed on purge');
    t.ok(existsSync(join(root, 'var/lib/crosslink/agent/marker')), 'state kept on purge by default');
    t.match(purge.stdout + purge.stderr, /kept \/var\/lib\/crosslink/, 'purge says it kept the state');
    t.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^crosslink:/m, 'user kept with the state it owns');
    t.equal(inRoot(['dpkg-statoverride', '--list'], { check: false }).stdout.includes('/etc/crosslink'), false, 'stat overrides removed');
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
    const left = sh(['dpkg-deb', '-c', deb]).stdout.split('\n')
      .map((l) => l.split(/\s+/).slice(5).join(' ').replace(/^\.\//, '').replace(/ -> .*$/, '').replace(/\/$/, ''))
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
    writeFileSync(join(base, 'etc/apt/sources.list'),
      `deb ${mirror} bookworm main\ndeb ${mirror} bookworm-updates main\ndeb ${securityMirror} bookworm-security main\n`);
    sh(['env', '-i', ...envArgs(), 'chroot', base, 'apt-get', 'update', '-qq']);
    sh(['env', '-i', ...envArgs(), 'chroot', base, 'apt-get', 'install', '-y', '-qq', '--download-only', '--no-install-recommends', ...PREFETCH]);
    sh(['tar', '-C', base, '--one-file-system', '-cf', `${tarball}.tmp`, '.']);
    renameSync(`${tarball}.tmp`, tarball);
    for (const old of readdirSync(cacheDir)) {
      if (/^bookworm-minbase-\d{8}\.tar$/.test(old) && join(cacheDir, old) !== tarball) rmSync(join(cacheDir, old));
    }
    sh(['rm', '-rf', '--one-file-system', base]);
    return tarball;
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
  const inputs = sh(['sh', '-c', 'find dist deploy docs examples scripts/build-deb.sh package.json package-lock.json -type f 2>/dev/null'], { cwd: repo, check: false }).stdout.split('\n').filter(Boolean);
  return inputs.every((f) => statSync(join(repo, f)).mtimeMs <= debTime);
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));
}

function isMounted(dir: string): boolean {
  return mountsUnder(dir).includes(dir);
}
