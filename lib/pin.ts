// Pinning the controller's private CA by its SHA-256 fingerprint (from a join token, a flag or an
// environment variable), for every client of the controller: the agent and the CLI.
//
// 1. `fetchPinnedCa(url, fingerprint)` gets the CA certificate without trusting anything: it reads
//    the chain the server presents in the TLS handshake (the controller sends leaf + CA), and
//    failing that `GET /v1/ca`; either way the certificate is accepted only if its DER hashes to the
//    pin, so the unverified channel cannot substitute another CA.
// 2. `pinnedTlsOptions(caPem, fingerprint)` makes that CA the *only* trust root for later
//    connections and checks again that the verified chain ends in the pinned CA.
//
// Hostname verification is skipped on purpose: the CA is private to this one controller and pinned,
// so any certificate it signed is the controller, whatever name or address the agent dials (edge
// boxes often reach the controller by an address that is not in its certificate).
import { createHash, X509Certificate } from 'node:crypto';
import https from 'node:https';
import tls, { type PeerCertificate, type DetailedPeerCertificate } from 'node:tls';
import { CrosslinkError } from './errors.js';

export interface PinnedTlsOptions {
  ca: string;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
}

export function normaliseFingerprint(f: string): string {
  return f.replace(/:/g, '').toLowerCase();
}

export function fingerprintOfDer(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

/** Trust options for node:https / node:http2 / connect-node's nodeOptions. */
export function pinnedTlsOptions(caPem: string, fingerprint: string): PinnedTlsOptions {
  const pin = normaliseFingerprint(fingerprint);
  const actual = fingerprintOfDer(new X509Certificate(caPem).raw);
  if (actual !== pin) throw pinMismatch(pin, [actual]);
  return {
    ca: caPem,
    // Called by Node only after the chain verified against `ca` (our single trust root).
    checkServerIdentity: (_host, cert) => {
      const seen = chainFingerprints(cert);
      return seen.includes(pin) ? undefined : pinMismatch(pin, seen);
    },
  };
}

/** An https.Agent that trusts only the pinned CA (for the CLI's REST calls). */
export function pinnedHttpsAgent(caPem: string, fingerprint: string, opts: https.AgentOptions = {}): https.Agent {
  return new https.Agent({ ...opts, ...pinnedTlsOptions(caPem, fingerprint) });
}

/**
 * Fetches the controller's CA certificate (PEM) and checks it against the pin. Throws
 * CrosslinkError('unauthenticated') naming the expected fingerprint when the server does not hold
 * the pinned CA, and the network error (with its cause) when the controller cannot be reached.
 */
export async function fetchPinnedCa(
  controllerUrl: string,
  fingerprint: string,
  opts: { timeoutMs?: number } = {},
): Promise<string> {
  const pin = normaliseFingerprint(fingerprint);
  if (!/^[0-9a-f]{64}$/.test(pin))
    throw new CrosslinkError('config_invalid', 'CA fingerprint must be 64 hex digits (sha256)', [
      { path: 'ca-fingerprint', message: 'not a sha256 fingerprint' },
    ]);
  const url = new URL(controllerUrl);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const chain = await handshakeChain(url, timeoutMs);
  const hit = chain.find((c) => c.fingerprint === pin);
  if (hit) return derToPem(hit.der);
  // The server did not send its CA in the handshake (e.g. a brought-in certificate without chain).
  const served = await fetchCaRoute(url, timeoutMs).catch(() => [] as string[]);
  for (const pem of served) {
    if (fingerprintOfDer(new X509Certificate(pem).raw) === pin) return pem;
  }
  throw pinMismatch(pin, [
    ...chain.map((c) => c.fingerprint),
    ...served.map((p) => fingerprintOfDer(new X509Certificate(p).raw)),
  ]);
}

function pinMismatch(pin: string, seen: string[]): CrosslinkError {
  return new CrosslinkError(
    'unauthenticated',
    `controller certificate does not chain to the pinned CA ${pin}` +
      (seen.length ? ` (server presented ${[...new Set(seen)].join(', ')})` : ''),
  );
}

function chainFingerprints(cert: PeerCertificate): string[] {
  const out: string[] = [];
  let c: DetailedPeerCertificate | undefined = cert as DetailedPeerCertificate;
  for (let i = 0; c && c.raw && i < 10; i++) {
    out.push(fingerprintOfDer(c.raw));
    if (!c.issuerCertificate || c.issuerCertificate === c) break;
    c = c.issuerCertificate;
  }
  return out;
}

function handshakeChain(url: URL, timeoutMs: number): Promise<{ fingerprint: string; der: Buffer }[]> {
  return new Promise((resolve, reject) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const socket = tls.connect({
      host,
      port: Number(url.port || 443),
      servername: /^[\d.:]+$/.test(host) ? undefined : host,
      // Nothing from this connection is trusted except a certificate whose hash equals the pin.
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    const timer = setTimeout(
      () => socket.destroy(new Error(`TLS handshake with ${url.host} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const out: { fingerprint: string; der: Buffer }[] = [];
      let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      for (let i = 0; c && c.raw && i < 10; i++) {
        out.push({ fingerprint: fingerprintOfDer(c.raw), der: c.raw });
        if (!c.issuerCertificate || c.issuerCertificate === c) break;
        c = c.issuerCertificate;
      }
      socket.end();
      resolve(out);
    });
    socket.once('error', (e: Error) => {
      clearTimeout(timer);
      reject(
        new CrosslinkError('unavailable', `cannot reach controller at ${url.host}: ${e.message}`, [], { cause: e }),
      );
    });
  });
}

function fetchCaRoute(url: URL, timeoutMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = https.get(new URL('/v1/ca', url), { rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 64_000) body += d;
      });
      res.on('end', () => {
        // Plain PEM or JSON carrying PEM: take every certificate in the text (JSON escapes "\n").
        const text = body.replace(/\\n/g, '\n');
        resolve(
          (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => p + '\n'),
        );
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function derToPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
