// The browser for the web view's tests: Debian's chromium (scripts/setup.sh installs it), driven by
// playwright-core, which never downloads a browser of its own. The controller's certificate comes
// from its own CA, so the browser is told to trust exactly that certificate: chromium's
// --ignore-certificate-errors-spki-list with the sha256 of the leaf's public key (a pin, not a
// blanket "ignore HTTPS errors"). Closed through its playwright handle when the test ends.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { Test } from 'tap';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Not committed (.gitignore has .tap/). */
export const SCREENSHOT_DIR = join(REPO, '.tap', 'ui-screenshots');

/** The chromium to drive: $CROSSLINK_CHROMIUM, else Debian's; null when neither is there. */
export function chromiumPath(): string | null {
  const path = process.env.CROSSLINK_CHROMIUM ?? '/usr/bin/chromium';
  return existsSync(path) ? path : null;
}

/** Why the browser tests cannot run here, or false (for tap's `skip`). */
export function skipWithoutChromium(): string | false {
  return chromiumPath() ? false : 'chromium is not installed (Debian package chromium; scripts/setup.sh)';
}

/** base64 of the sha256 of the certificate's SubjectPublicKeyInfo: what chromium's SPKI list takes. */
export function spkiPin(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

export interface TestBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** How the controller's certificate is accepted: "spki-pin" or "ignore-https-errors". */
  trust: 'spki-pin' | 'ignore-https-errors';
  /** A new page in a new context (its own cookies): a second person at another browser. */
  newPerson(): Promise<{ context: BrowserContext; page: Page }>;
  /** Writes .tap/ui-screenshots/<name>.png; returns the path. */
  screenshot(page: Page, name: string): Promise<string>;
}

/**
 * Launches headless chromium for `t`, closed when `t` ends. `leafCertPem`: the controller's server
 * certificate, trusted by its key's pin; absent, HTTPS errors are ignored instead.
 */
export async function openBrowser(t: Test, opts: { leafCertPem?: string } = {}): Promise<TestBrowser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('chromium is not installed (scripts/setup.sh)');
  const args: string[] = [];
  // Root (the test machine) cannot use chromium's user-namespace sandbox.
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  if (opts.leafCertPem) args.push(`--ignore-certificate-errors-spki-list=${spkiPin(opts.leafCertPem)}`);
  const browser = await chromium.launch({ executablePath, headless: true, args });
  t.teardown(() => browser.close());
  const trust = opts.leafCertPem ? 'spki-pin' : 'ignore-https-errors';
  const newPerson = async () => {
    const context = await browser.newContext({
      ignoreHTTPSErrors: trust === 'ignore-https-errors',
      viewport: { width: 1366, height: 768 }, // a laptop screen
    });
    return { context, page: await context.newPage() };
  };
  const { context, page } = await newPerson();
  return {
    browser,
    context,
    page,
    trust,
    newPerson,
    async screenshot(p, name) {
      mkdirSync(SCREENSHOT_DIR, { recursive: true });
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await p.screenshot({ path, fullPage: true });
      return path;
    },
  };
}

/**
 * A loopback TCP port in this namespace that pipes each connection to a Unix socket: how a browser
 * here reaches a controller listening inside a test's network namespace (test/e2e/fleet.ts's
 * apiSocket). TLS passes through untouched.
 */
export async function proxyToSocket(socketPath: string): Promise<{ port: number; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(socketPath);
    open.add(client);
    client.on('close', () => open.delete(client));
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of open) c.destroy();
      }),
  };
}
