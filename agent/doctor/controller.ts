// Doctor checks toward the controller: reaching one of its URLs, its CA against the pin, the clock
// against its Date header, and whether WireGuard's MTU fits the underlay on the way to it.
import { parseAddress } from '../../lib/prefix.js';
import { isCrosslinkError } from '../../lib/errors.js';
import { normaliseFingerprint } from '../../lib/pin.js';
import { parseJsonList } from './command-output.js';
import type { CheckResult, DoctorDeps, DoctorInput, HttpDate } from './types.js';

/** WireGuard's worst-case overhead (IPv6 underlay: 40 IP + 8 UDP + 32 WireGuard). */
export const WIREGUARD_OVERHEAD_BYTES = 80;
export const CLOCK_WARN_MS = 5_000;
export const CLOCK_FAIL_MS = 60_000;

// ---------- controller, pin, clock ----------

export function judgeClockSkew(skewMs: number): CheckResult {
  const check = 'clock';
  const s = Math.abs(skewMs) / 1000;
  const dir = skewMs > 0 ? 'ahead of' : 'behind';
  const finding = `${s.toFixed(1)} s ${dir} the controller`;
  const fix = 'configure NTP (systemd-timesyncd or chrony) and check `timedatectl` says synchronized';
  if (Math.abs(skewMs) > CLOCK_FAIL_MS)
    return { check, verdict: 'FAIL', finding: `${finding}: TLS certificates and token expiry will be misjudged`, fix };
  if (Math.abs(skewMs) > CLOCK_WARN_MS) return { check, verdict: 'WARN', finding, fix };
  return { check, verdict: 'OK', finding: `within ${Math.max(1, Math.ceil(s))} s of the controller` };
}

/** Local clock minus the controller's, from a Date header (1 s resolution: its middle is assumed). */
export function skewFromDate(d: HttpDate): number | null {
  if (!d.date) return null;
  const serverMs = Date.parse(d.date);
  if (Number.isNaN(serverMs)) return null;
  return (d.sentAtMs + d.receivedAtMs) / 2 - (serverMs + 500);
}

/** The URLs to try, first choice first. */
function controllerUrlsOf(c: NonNullable<DoctorInput['controller']>): string[] {
  return c.urls?.length ? c.urls : c.url.split(/\s+/).filter((u) => u !== '');
}

export async function checkController(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult[]> {
  const c = input.controller;
  if (!c) {
    const fix = 'enroll the agent first, or give the join token: crosslink doctor --join TOKEN';
    return [
      {
        check: 'controller',
        verdict: 'WARN',
        finding: 'not checked: no enrollment in the state dir and no --join token',
        fix,
      },
      { check: 'clock', verdict: 'WARN', finding: 'not checked: controller unknown', fix },
    ];
  }
  const pin = normaliseFingerprint(c.caFingerprint);
  // A controller on several networks: the box needs to reach one of its URLs (the agent tries them
  // in turn); the others may sit on a network this box is not on.
  const urls = controllerUrlsOf(c);
  const notChecked = {
    check: 'clock',
    verdict: 'WARN' as const,
    finding: 'not checked: controller not reached',
    fix: 'fix the controller check first',
  };
  const failed: string[] = [];
  let caPem: string | null = null;
  let url = urls[0] ?? c.url;
  for (const u of urls) {
    try {
      caPem = await deps.fetchPinnedCa(u, pin);
      url = u;
      break;
    } catch (e) {
      const msg = (e as Error).message;
      if (isCrosslinkError(e) && e.code === 'unauthenticated') {
        return [
          { check: 'controller', verdict: 'OK', finding: `${u} answers TLS (from the ${c.source})` },
          {
            check: 'certificate pin',
            verdict: 'FAIL',
            finding: msg,
            fix: "something on the path presents another certificate (a TLS-inspecting proxy: exempt the controller), or the controller's CA changed (restore it, or re-enroll with a new join token)",
          },
          notChecked,
        ];
      }
      failed.push(urls.length > 1 ? `${u}: ${msg}` : msg);
    }
  }
  if (caPem === null) {
    return [
      {
        check: 'controller',
        verdict: 'FAIL',
        finding: `cannot reach ${urls.length > 1 ? `any of ${c.url}` : c.url} (from the ${c.source}): ${failed.join('; ')}`,
        fix: "check DNS, the route and that TCP to the controller's port is open from this box; is crosslink-controller running?",
      },
      notChecked,
    ];
  }
  const others = failed.length
    ? ` (not reached: ${failed.map((f) => f.split(': ')[0]).join(', ')}; fine if this box is not on that network)`
    : '';
  const out: CheckResult[] = [
    { check: 'controller', verdict: 'OK', finding: `${url} reachable (from the ${c.source})${others}` },
    { check: 'certificate pin', verdict: 'OK', finding: `the controller's CA matches the pin ${pin.slice(0, 16)}…` },
  ];
  try {
    const skew = skewFromDate(await deps.controllerDate(url, caPem, pin));
    out.push(
      skew === null
        ? {
            check: 'clock',
            verdict: 'WARN',
            finding: 'the controller sent no Date header',
            fix: 'compare `date -u` here with the controller by hand',
          }
        : judgeClockSkew(skew),
    );
  } catch (e) {
    out.push({
      check: 'clock',
      verdict: 'WARN',
      finding: `could not read the controller's time: ${(e as Error).message}`,
      fix: 'compare `date -u` here with the controller by hand',
    });
  }
  return out;
}

// ---------- MTU ----------

export function judgeMtu(s: {
  wgMtu: number;
  dev: string | null;
  underlayMtu: number | null;
  target: string;
}): CheckResult {
  const check = 'mtu';
  if (!s.dev || s.underlayMtu === null)
    return {
      check,
      verdict: 'WARN',
      finding: `no route to ${s.target}: cannot tell the underlay MTU`,
      fix: 'add a default route (or a route to the controller), then run doctor again',
    };
  const need = s.wgMtu + WIREGUARD_OVERHEAD_BYTES;
  if (need > s.underlayMtu) {
    return {
      check,
      verdict: 'WARN',
      finding: `interface MTU ${s.wgMtu} + ${WIREGUARD_OVERHEAD_BYTES} overhead = ${need} > ${s.dev} MTU ${s.underlayMtu}: large packets will be fragmented or lost`,
      fix: `set mtu: ${s.underlayMtu - WIREGUARD_OVERHEAD_BYTES} in agent.yaml on this box and its peers (or raise ${s.dev}'s MTU)`,
    };
  }
  return {
    check,
    verdict: 'OK',
    finding: `interface MTU ${s.wgMtu} + ${WIREGUARD_OVERHEAD_BYTES} fits ${s.dev} MTU ${s.underlayMtu} (toward ${s.target})`,
  };
}

export async function checkMtu(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult> {
  let target = 'the default route';
  let dev: string | null = null;
  // The route to the first controller URL this box has a route to (one per network the controller is on).
  for (const u of input.controller ? controllerUrlsOf(input.controller) : []) {
    let host: string;
    try {
      host = new URL(u).hostname.replace(/^\[|\]$/g, '');
    } catch {
      continue;
    }
    const address = parseAddress(host) ? host : await deps.resolve(host).catch(() => null);
    if (address) {
      const r = await deps.run(['ip', '-json', 'route', 'get', address]);
      dev = r.exitCode === 0 ? (parseJsonList<{ dev?: string }>(r.stdout)[0]?.dev ?? null) : null;
      if (dev) {
        target = `the controller (${address})`;
        break;
      }
    }
  }
  if (!dev) {
    const r = await deps.run(['ip', '-json', 'route', 'show', 'default']);
    const d = r.exitCode === 0 ? (parseJsonList<{ dev?: string }>(r.stdout).find((x) => x.dev)?.dev ?? null) : null;
    if (d) {
      dev = d;
      target = 'the default route';
    }
  }
  let underlayMtu: number | null = null;
  if (dev) {
    const r = await deps.run(['ip', '-json', 'link', 'show', 'dev', dev]);
    underlayMtu = parseJsonList<{ mtu?: number }>(r.stdout)[0]?.mtu ?? null;
  }
  return judgeMtu({ wgMtu: input.mtu, dev, underlayMtu, target });
}
