import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../lib/logger.js';
import { StateDir, enrollmentUrls, generatePrivateKey, publicKeyOf, writeFileAtomic } from './state.js';
import { NAMED } from './reconcile/reconcile.fixture.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'xl-state-'));
const modeOf = (p: string) => statSync(p).mode & 0o777;

t.test('key pair: made once, 0600, reloaded the same', async (t) => {
  const dir = join(tmp(), 'agent');
  const s = new StateDir(dir, silentLogger());
  await s.init();
  t.equal(modeOf(dir), 0o700);
  const k1 = await s.keys();
  t.equal(k1.isNew, true);
  t.match(k1.publicKey, /^[A-Za-z0-9+/]{43}=$/);
  t.equal(modeOf(k1.privateKeyFile), 0o600);
  t.equal(modeOf(s.path('publicKey')), 0o600);
  const k2 = await s.keys();
  t.same(k2, { ...k1, isNew: false });
  t.same(readdirSync(dir).sort(), ['private.key', 'public.key'], 'no temp files left');
});

t.test('the public key matches what wg pubkey says (when wg is installed)', async (t) => {
  const priv = generatePrivateKey();
  const raw = Buffer.from(priv, 'base64');
  t.equal(raw[0]! & 7, 0, 'clamped');
  t.equal(raw[31]! & 0xc0, 0x40, 'clamped');
  // RFC 7748 test vector (Alice).
  const alice = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString(
    'base64',
  );
  t.equal(
    publicKeyOf(alice),
    Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64'),
  );
  let wgPub: string | null = null;
  try {
    wgPub = execFileSync('wg', ['pubkey'], { input: `${priv}\n` })
      .toString()
      .trim();
  } catch {
    t.comment('wg not installed; skipped the cross-check');
  }
  if (wgPub) t.equal(publicKeyOf(priv), wgPub);
});

t.test('a key file readable by others is narrowed to 0600', async (t) => {
  const s = new StateDir(tmp(), silentLogger());
  await s.init();
  const k = await s.keys();
  chmodSync(k.privateKeyFile, 0o644);
  await s.keys();
  t.equal(modeOf(k.privateKeyFile), 0o600);
});

t.test('enrollment and config round-trip, 0600', async (t) => {
  const s = new StateDir(tmp(), silentLogger());
  await s.init();
  t.equal(await s.loadEnrollment(), null);
  t.equal(await s.loadConfig(), null);
  const e = {
    controllerUrl: 'https://ctl:8443',
    caFingerprint: 'a'.repeat(64),
    credential: 'secret-cred',
    agentId: 'a1',
    name: 'leeds-gw',
    overlayAddress: '100.64.0.7/10',
    protocolVersion: 1,
    enrolledAtMs: 1,
  };
  await s.saveEnrollment(e);
  t.same(await s.loadEnrollment(), e);
  t.equal(modeOf(s.path('enrollment')), 0o600);
  await s.saveConfig(NAMED.peersRoutesFirewall!);
  t.equal(modeOf(s.path('config')), 0o600);
  const back = await s.loadConfig();
  t.equal(back!.generation, 4n);
  t.same(back!.routes, NAMED.peersRoutesFirewall!.routes);
  t.equal(back!.firewall!.outbound[0]!.ports[0]!.first, 443);
});

t.test('enrollment: every controller URL, and a file from before the list still loads', async (t) => {
  const s = new StateDir(tmp(), silentLogger());
  await s.init();
  const base = {
    caFingerprint: 'a'.repeat(64),
    credential: 'secret-cred',
    agentId: 'a1',
    name: 'leeds-gw',
    overlayAddress: '100.64.0.7/10',
    protocolVersion: 1,
    enrolledAtMs: 1,
  };
  // Written by an agent that knew one URL: no controllerUrls.
  writeFileSync(s.path('enrollment'), JSON.stringify({ controllerUrl: 'https://ctl:8443', ...base }), { mode: 0o600 });
  const old = await s.loadEnrollment();
  t.equal(old!.controllerUrl, 'https://ctl:8443');
  t.same(enrollmentUrls(old!), ['https://ctl:8443'], 'an old file: its one URL');
  const urls = ['https://172.31.0.2:8443', 'https://172.30.0.2:8443'];
  await s.saveEnrollment({ controllerUrl: urls[0]!, controllerUrls: urls, ...base });
  const now = await s.loadEnrollment();
  t.same(enrollmentUrls(now!), urls, 'every URL, first choice first');
  t.equal(
    now!.controllerUrl,
    urls[0],
    'controllerUrl stays the first, for an older agent reading the file after a downgrade',
  );
  t.same(
    enrollmentUrls({ controllerUrl: 'https://x:1', controllerUrls: [] }),
    ['https://x:1'],
    'an empty list falls back to controllerUrl',
  );
});

t.test('damaged files', async (t) => {
  const s = new StateDir(tmp(), silentLogger());
  await s.init();
  writeFileSync(s.path('config'), Buffer.from([0xff, 0xff, 0xff]));
  t.equal(await s.loadConfig(), null, 'unreadable config: start without it');
  writeFileSync(s.path('enrollment'), '{not json');
  await t.rejects(s.loadEnrollment(), { code: 'config_invalid' });
  writeFileSync(
    s.path('enrollment'),
    JSON.stringify({
      controllerUrl: 'https://a:1',
      controllerUrls: 'https://a:1',
      caFingerprint: 'a'.repeat(64),
      credential: 'c',
    }),
  );
  await t.rejects(s.loadEnrollment(), { code: 'config_invalid' }, 'controllerUrls not a list');
});

t.test('writeFileAtomic replaces content and mode', async (t) => {
  const d = tmp();
  const p = join(d, 'f');
  writeFileSync(p, 'old', { mode: 0o644 });
  await writeFileAtomic(p, 'new');
  t.equal(readFileSync(p, 'utf8'), 'new');
  t.equal(modeOf(p), 0o600);
  t.same(readdirSync(d), ['f']);
});
