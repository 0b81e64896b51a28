import t, { type Test } from 'tap';
import { mkdtemp, rm, stat, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { loadOrCreateTlsIdentity, fingerprintOfPem } from './tls.js';
import { fetchPinnedCa, pinnedTlsOptions } from '../lib/pin.js';

async function tmp(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'xl-tls-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

function serve(t: Test, cert: string, key: string, caRoute?: string): Promise<string> {
  const srv = https.createServer({ cert, key }, (req, res) => {
    if (req.url === '/v1/ca' && caRoute) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ pem: caRoute }));
      return;
    }
    res.end('ok');
  });
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  return new Promise((resolve) =>
    srv.listen(0, '127.0.0.1', () => resolve(`https://127.0.0.1:${(srv.address() as AddressInfo).port}`)),
  );
}

function get(url: string, opts: https.RequestOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, opts, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      })
      .on('error', reject);
  });
}

t.test('creates a CA and server cert once, 0600, and reuses them', async (t) => {
  const dir = await tmp(t);
  const a = await loadOrCreateTlsIdentity(dir, { sans: ['localhost', '127.0.0.1'] });
  t.match(a.caFingerprint, /^[0-9a-f]{64}$/);
  t.equal(a.caFingerprint, fingerprintOfPem(a.caCertPem));
  for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key']) {
    t.equal((await stat(join(dir, f))).mode & 0o777, 0o600, `${f} is 0600`);
  }
  const b = await loadOrCreateTlsIdentity(dir, { sans: ['localhost', '127.0.0.1'] });
  t.same(b, a, 'second start reuses everything');
  const c = await loadOrCreateTlsIdentity(dir, { sans: ['localhost', '127.0.0.1', 'ctl.example.nhs.uk'] });
  t.equal(c.caFingerprint, a.caFingerprint, 'a new name renews the server cert under the same CA');
  t.not(c.certPem, a.certPem);
  t.equal(await readFile(join(dir, 'server.crt'), 'utf8'), c.certPem);
});

t.test('pinning: CA found in the handshake; hostname not checked; wrong pin refused', async (t) => {
  const id = await loadOrCreateTlsIdentity(await tmp(t), { sans: ['controller.invalid'] });
  const url = await serve(t, id.certChainPem, id.keyPem);
  const ca = await fetchPinnedCa(url, id.caFingerprint);
  t.equal(fingerprintOfPem(ca), id.caFingerprint);
  // 127.0.0.1 is not in the certificate: pinning accepts it anyway.
  t.equal(await get(url, { ...pinnedTlsOptions(ca, id.caFingerprint) }), 'ok');
  await t.rejects(fetchPinnedCa(url, 'ab'.repeat(32)), { code: 'unauthenticated', message: /pinned CA abab/ });
  t.throws(() => pinnedTlsOptions(ca, 'ab'.repeat(32)), { code: 'unauthenticated' });

  // A server whose cert comes from another CA is refused even with the right CA as pin.
  const other = await loadOrCreateTlsIdentity(await tmp(t), { sans: ['localhost'] });
  const url2 = await serve(t, other.certChainPem, other.keyPem);
  await t.rejects(get(url2, { ...pinnedTlsOptions(ca, id.caFingerprint) }));
});

t.test('pinning falls back to GET /v1/ca when the handshake lacks the CA', async (t) => {
  const id = await loadOrCreateTlsIdentity(await tmp(t), { sans: ['localhost'] });
  const url = await serve(t, id.certPem, id.keyPem, id.caCertPem);
  const ca = await fetchPinnedCa(url, id.caFingerprint.toUpperCase().replace(/(..)(?!$)/g, '$1:'));
  t.equal(fingerprintOfPem(ca), id.caFingerprint);
  t.equal(await get(url, { ...pinnedTlsOptions(ca, id.caFingerprint) }), 'ok');
});
