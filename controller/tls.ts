// The controller's TLS identity: a private CA (ECDSA P-256) and a server certificate signed by it,
// created on first start in the data dir (files 0600) and reused afterwards. Agents and the CLI pin
// the CA by its SHA-256 fingerprint (carried in join tokens), so there is no trust on first use.
// With --tls-cert/--tls-key the operator brings their own: the last certificate of the cert file's
// chain is taken as the CA that clients pin (a lone self-signed certificate is its own CA).
import 'reflect-metadata';
import { webcrypto, createHash, X509Certificate as NodeX509 } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { CrosslinkError } from '../lib/errors.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface TlsIdentity {
  caCertPem: string;
  /** The server (leaf) certificate alone. */
  certPem: string;
  /** Leaf followed by the CA: what the server should present, so a client holding only the pin can
   *  find the CA in the handshake (lib/pin.ts) without a separate fetch. */
  certChainPem: string;
  keyPem: string;
  /** sha256 of the CA certificate's DER, lowercase hex, no colons. */
  caFingerprint: string;
}

export interface TlsOptions {
  certFile?: string;
  keyFile?: string;
  /** Names and addresses the server certificate is valid for, e.g. ["localhost", "127.0.0.1"]. */
  sans: string[];
  /** Validity of a newly made server certificate; default 825 days. The CA gets 20 years. */
  serverValidityDays?: number;
}

const FILES = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'server.crt', key: 'server.key' } as const;
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export async function loadOrCreateTlsIdentity(dataDir: string, opts: TlsOptions): Promise<TlsIdentity> {
  if (opts.certFile || opts.keyFile) return loadOwn(opts);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const p = (f: string) => join(dataDir, f);

  let ca = await readPair(p(FILES.caCert), p(FILES.caKey));
  if (!ca) {
    ca = await createCa();
    // Key first: a crash between the two writes leaves no certificate without its key.
    await writeSecret(p(FILES.caKey), ca.keyPem);
    await writeSecret(p(FILES.caCert), ca.certPem);
  }
  const caFingerprint = fingerprintOfPem(ca.certPem);

  let server = await readPair(p(FILES.cert), p(FILES.key));
  if (!server || !serverCertStillGood(server.certPem, ca.certPem, opts.sans)) {
    server = await createServerCert(ca, opts.sans, opts.serverValidityDays ?? 825);
    await writeSecret(p(FILES.key), server.keyPem);
    await writeSecret(p(FILES.cert), server.certPem);
  }
  return {
    caCertPem: ca.certPem,
    certPem: server.certPem,
    certChainPem: server.certPem.trimEnd() + '\n' + ca.certPem,
    keyPem: server.keyPem,
    caFingerprint,
  };
}

/** sha256 of the DER of the first certificate in `pem`, lowercase hex. */
export function fingerprintOfPem(pem: string): string {
  const der = new NodeX509(pem).raw;
  return createHash('sha256').update(der).digest('hex');
}

async function loadOwn(opts: TlsOptions): Promise<TlsIdentity> {
  if (!opts.certFile || !opts.keyFile) {
    throw new CrosslinkError('config_invalid', '--tls-cert and --tls-key must be given together', [
      { path: opts.certFile ? 'tls-key' : 'tls-cert', message: 'missing' },
    ]);
  }
  const [certText, keyPem] = await Promise.all([readFile(opts.certFile, 'utf8'), readFile(opts.keyFile, 'utf8')]);
  const certs = splitPem(certText);
  if (certs.length === 0)
    throw new CrosslinkError('config_invalid', `${opts.certFile} holds no PEM certificate`, [
      { path: 'tls-cert', message: 'no certificate' },
    ]);
  const caCertPem = certs[certs.length - 1]!;
  return {
    caCertPem,
    certPem: certs[0]!,
    certChainPem: certs.join(''),
    keyPem,
    caFingerprint: fingerprintOfPem(caCertPem),
  };
}

export function splitPem(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) => c + '\n');
}

interface Pair {
  certPem: string;
  keyPem: string;
}

async function readPair(certPath: string, keyPath: string): Promise<Pair | null> {
  try {
    const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    return { certPem, keyPem };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

async function writeSecret(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

function serverCertStillGood(certPem: string, caPem: string, sans: string[]): boolean {
  const cert = new NodeX509(certPem);
  if (!cert.checkIssued(new NodeX509(caPem))) return false;
  // Renew a month before expiry, and whenever a requested name is not covered yet.
  if (Date.parse(cert.validTo) - Date.now() < 30 * DAY_MS) return false;
  const have = new Set((cert.subjectAltName ?? '').split(',').map((s) => s.trim().replace(/^(DNS|IP Address):/, '')));
  return sans.every((s) => have.has(s));
}

function serial(): string {
  // Positive 128-bit serial (RFC 5280 asks for <= 20 octets, positive).
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

async function importKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0]!;
  return webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
}

async function createCa(): Promise<Pair> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Crosslink controller CA ${new Date(now).toISOString().slice(0, 10)}`,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 20 * 365 * DAY_MS),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

async function createServerCert(ca: Pair, sans: string[], validityDays: number): Promise<Pair> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKeyPem(ca.keyPem);
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const names = sans.length > 0 ? sans : ['localhost'];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names[0]}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + validityDays * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })),
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}
