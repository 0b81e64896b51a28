// `crosslink doctor`: checks that this box can run the agent, and says how to fix what it cannot.
// Each check is a function of its inputs and injected deps (command runner, file reads, clock, TLS),
// and the judgement of each is a pure function next to it, so the decisions are tested with fakes
// and one real run inside a network namespace. Read-only: nothing here changes the box.
// The checks are in doctor/ by what they look at: host.ts (the box), controller.ts (the way to the
// controller), conflicts.ts (routes and firewalls that would fight the agent); real-deps.ts reads
// this machine.
import { checkController, checkMtu } from './doctor/controller.js';
import { checkFirewall, checkRoutes } from './doctor/conflicts.js';
import { checkInterface, checkPrivileges, checkTools, checkWireGuard, judgeForwarding } from './doctor/host.js';
import type { CheckResult, DoctorDeps, DoctorInput, Verdict } from './doctor/types.js';

/** Runs every check; the order is the order printed. */
export async function runDoctor(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult[]> {
  const iface = await checkInterface(input, deps);
  const isIpv6Relevant = [...input.overlayRoutes, ...input.advertised].some((p) => p.includes(':'));
  const [ipv4, ipv6] = await Promise.all([
    deps.readFile('/proc/sys/net/ipv4/ip_forward'),
    deps.readFile('/proc/sys/net/ipv6/conf/all/forwarding'),
  ]);
  const [privileges, wg, tools, controller, mtu, routes, firewall] = await Promise.all([
    checkPrivileges(deps),
    checkWireGuard(input, deps),
    checkTools(deps),
    checkController(input, deps),
    checkMtu(input, deps),
    checkRoutes(input, deps),
    checkFirewall(input, deps),
  ]);
  return [
    ...(input.setupErrors ?? []).map((e): CheckResult => ({
      check: 'config',
      verdict: 'FAIL',
      finding: e,
      fix: 'correct the config file or state dir named above',
    })),
    privileges,
    ...judgeForwarding({ ipv4, ipv6, isIpv6Relevant, isAgentRunning: iface.isAgentRunning }),
    ...wg,
    ...tools,
    ...controller,
    mtu,
    routes,
    firewall,
    iface.result,
  ];
}

const PAD: Record<Verdict, string> = { OK: 'OK    ', WARN: 'WARN  ', FAIL: 'FAIL  ' };

/** `OK|WARN|FAIL  <check>: <finding>`, and `      fix: <what to do>` under each WARN and FAIL. */
export function formatResults(results: CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${PAD[r.verdict]}${r.check}: ${r.finding}`);
    if (r.verdict !== 'OK' && r.fix) lines.push(`      fix: ${r.fix}`);
  }
  const count = (v: Verdict) => results.filter((r) => r.verdict === v).length;
  lines.push('', `${count('OK')} ok, ${count('WARN')} warning(s), ${count('FAIL')} failure(s)`);
  return `${lines.join('\n')}\n`;
}

/** 0 when nothing failed (warnings allowed), 1 otherwise. */
export function doctorExitCode(results: CheckResult[]): 0 | 1 {
  return results.some((r) => r.verdict === 'FAIL') ? 1 : 0;
}
