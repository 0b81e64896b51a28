// What every doctor check returns, what the checks are given, and the deps they read the box through.
import type { Clock } from '../../lib/clock.js';

export type Verdict = 'OK' | 'WARN' | 'FAIL';

export interface CheckResult {
  check: string;
  verdict: Verdict;
  finding: string;
  /** What to do; present for WARN and FAIL. */
  fix?: string;
}

export interface DoctorInput {
  /** The WireGuard interface the agent wants. */
  interfaceName: string;
  /** Its MTU (the agent's `mtu:`, default 1420). */
  mtu: number;
  wireguard: 'kernel' | 'userspace' | 'auto';
  /** Where the controller is and which CA to pin (state dir or join token); null: neither known. */
  controller: {
    /** The controller URL, or every one separated by spaces (what the findings show). */
    url: string;
    /** Every controller URL (one per network the controller host sits on); default: `url` split at spaces. */
    urls?: string[];
    caFingerprint: string;
    source: string;
  } | null;
  /** Prefixes the agent's saved config routes into the overlay (empty before the first config). */
  overlayRoutes: string[];
  /** Prefixes the agent advertises (IPv6 among them makes IPv6 forwarding relevant). */
  advertised: string[];
  /** Problems met while reading the config file or state dir, shown as a FAIL each. */
  setupErrors?: string[];
}

export interface HttpDate {
  /** The `Date` header of the controller's answer (null when absent). */
  date: string | null;
  sentAtMs: number;
  receivedAtMs: number;
}

export interface DoctorDeps {
  /** Runs argv; a non-zero exit is returned, a missing program is exit code 127 (never throws). */
  run(argv: readonly string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** File text, or null when absent or unreadable. */
  readFile(path: string): Promise<string | null>;
  exists(path: string): Promise<boolean>;
  /** Absolute path of an executable on PATH, or null. */
  which(program: string): Promise<string | null>;
  clock: Clock;
  /** The controller's CA if its chain holds the pinned one (throws CrosslinkError otherwise). */
  fetchPinnedCa(url: string, fingerprint: string): Promise<string>;
  /** `GET /healthz` over TLS trusting only `caPem`. */
  controllerDate(url: string, caPem: string, fingerprint: string): Promise<HttpDate>;
  /** Resolves a host name to an address. */
  resolve(host: string): Promise<string>;
  /** true when the kernel has WireGuard: the agent's own probe (linux/wireguard.ts detectWireGuardMode). */
  kernelWireGuard(): Promise<boolean>;
}
