// Doctor checks of the box itself: privileges, IP forwarding, WireGuard and the tools the agent
// runs (wg, nft, ip), and whether the interface name is free.
import { firstLine, parseJsonList } from './command-output.js';
import type { CheckResult, DoctorDeps, DoctorInput } from './types.js';

const CAP_NET_ADMIN = 12n;
const CAP_NET_RAW = 13n;

// ---------- privileges ----------

export function parseProcStatus(text: string): { uid: number | null; capEff: bigint | null } {
  const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(text); // effective uid
  const cap = /^CapEff:\s+([0-9a-fA-F]+)/m.exec(text);
  return { uid: uid ? Number(uid[1]) : null, capEff: cap ? BigInt(`0x${cap[1]}`) : null };
}

export function judgePrivileges(s: { uid: number | null; capEff: bigint | null }): CheckResult {
  const check = 'privileges';
  if (s.capEff === null)
    return {
      check,
      verdict: 'WARN',
      finding: 'cannot read CapEff from /proc/self/status',
      fix: 'run as root, or through crosslink-agent.service',
    };
  const has = (bit: bigint) => ((s.capEff! >> bit) & 1n) === 1n;
  const who = s.uid === 0 ? 'root' : `uid ${s.uid ?? '?'}`;
  const unit =
    'run as root (sudo crosslink doctor); the agent gets both from crosslink-agent.service (CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW)';
  if (!has(CAP_NET_ADMIN))
    return {
      check,
      verdict: 'FAIL',
      finding: `${who} without CAP_NET_ADMIN: cannot create the interface, routes or nft table`,
      fix: unit,
    };
  if (!has(CAP_NET_RAW))
    return {
      check,
      verdict: 'WARN',
      finding: `${who} with CAP_NET_ADMIN but without CAP_NET_RAW: probes (ping) will fail`,
      fix: unit,
    };
  return { check, verdict: 'OK', finding: `${who} with CAP_NET_ADMIN and CAP_NET_RAW` };
}

export async function checkPrivileges(deps: DoctorDeps): Promise<CheckResult> {
  return judgePrivileges(parseProcStatus((await deps.readFile('/proc/self/status')) ?? ''));
}

// ---------- IP forwarding ----------

export function judgeForwarding(s: {
  ipv4: string | null;
  ipv6: string | null;
  isIpv6Relevant: boolean;
  isAgentRunning: boolean;
}): CheckResult[] {
  const one = (name: string, value: string | null, check: string): CheckResult => {
    if (value?.trim() === '1') return { check, verdict: 'OK', finding: `${name} = 1` };
    if (value === null)
      return {
        check,
        verdict: 'WARN',
        finding: `cannot read ${name}`,
        fix: 'run as root; check /proc/sys/net is mounted',
      };
    if (!s.isAgentRunning)
      return { check, verdict: 'OK', finding: `${name} = ${value.trim()} (the agent turns it on when it starts)` };
    return {
      check,
      verdict: 'WARN',
      finding: `${name} = ${value.trim()} while the agent's interface exists: something turned it off again`,
      fix: `find what resets it (sysctl.d, a firewall tool, cloud-init); set ${name}=1 in /etc/sysctl.d/90-crosslink.conf`,
    };
  };
  const out = [one('net.ipv4.ip_forward', s.ipv4, 'ip forwarding')];
  if (s.isIpv6Relevant) out.push(one('net.ipv6.conf.all.forwarding', s.ipv6, 'ipv6 forwarding'));
  return out;
}

// ---------- WireGuard, wg, nft, ip ----------

export function judgeWireGuard(s: {
  hasModule: boolean;
  wireguardGo: string | null;
  hasTun: boolean;
  wg: string | null;
  choice: DoctorInput['wireguard'];
}): CheckResult[] {
  const check = 'wireguard';
  let wg: CheckResult;
  const userspace = s.wireguardGo && s.hasTun;
  if (s.choice === 'kernel' && !s.hasModule) {
    wg = {
      check,
      verdict: 'FAIL',
      finding: 'wireguard: kernel is configured but the kernel has no WireGuard module',
      fix: s.wireguardGo
        ? 'set wireguard: auto (or userspace) in agent.yaml: wireguard-go is installed'
        : 'install a kernel with WireGuard (5.6+), or apt install wireguard-go and set wireguard: auto',
    };
  } else if (s.choice !== 'userspace' && s.hasModule) {
    wg = { check, verdict: 'OK', finding: 'kernel module available' };
  } else if (userspace) {
    wg = { check, verdict: 'OK', finding: `userspace: ${s.wireguardGo} and /dev/net/tun` };
  } else if (s.wireguardGo) {
    wg = {
      check,
      verdict: 'FAIL',
      finding: 'wireguard-go is installed but /dev/net/tun is missing',
      fix: 'modprobe tun; in a container, pass the device through (--device /dev/net/tun)',
    };
  } else {
    wg = {
      check,
      verdict: 'FAIL',
      finding:
        s.choice === 'userspace'
          ? 'wireguard: userspace is configured but wireguard-go is not on PATH'
          : 'no WireGuard kernel module and no wireguard-go on PATH',
      fix: 'apt install wireguard-go (or a kernel with WireGuard, 5.6+)',
    };
  }
  const tool: CheckResult = s.wg
    ? { check: 'wg', verdict: 'OK', finding: s.wg }
    : { check: 'wg', verdict: 'FAIL', finding: 'wg (wireguard-tools) not on PATH', fix: 'apt install wireguard-tools' };
  return [wg, tool];
}

export async function checkWireGuard(input: DoctorInput, deps: DoctorDeps): Promise<CheckResult[]> {
  const [hasModule, wireguardGo, wg, hasTun] = await Promise.all([
    deps.kernelWireGuard(),
    deps.which('wireguard-go'),
    deps.which('wg'),
    deps.exists('/dev/net/tun'),
  ]);
  return judgeWireGuard({ hasModule, wireguardGo, hasTun, wg, choice: input.wireguard });
}

export function judgeTool(
  check: string,
  r: { exitCode: number; stderr: string },
  pkg: string,
  what: string,
): CheckResult {
  if (r.exitCode === 0) return { check, verdict: 'OK', finding: what };
  if (r.exitCode === 127) return { check, verdict: 'FAIL', finding: `${check} not found`, fix: `apt install ${pkg}` };
  const err = firstLine(r.stderr);
  const isPermission = /permission|not permitted/i.test(err);
  return {
    check,
    verdict: 'FAIL',
    finding: `${check} fails (exit ${r.exitCode}): ${err || 'no message'}`,
    fix: isPermission ? 'run as root (CAP_NET_ADMIN)' : `reinstall ${pkg}; run the command by hand to see why`,
  };
}

export async function checkTools(deps: DoctorDeps): Promise<CheckResult[]> {
  const [nft, ip] = await Promise.all([deps.run(['nft', 'list', 'tables']), deps.run(['ip', '-V'])]);
  return [
    judgeTool('nft', nft, 'nftables', '`nft list tables` works'),
    judgeTool('ip', ip, 'iproute2', firstLine(ip.stdout) || 'present'),
  ];
}

export function judgeInterfaceName(interfaceName: string, link: { exists: boolean; kind: string | null }): CheckResult {
  const check = 'interface name';
  if (!link.exists) return { check, verdict: 'OK', finding: `${interfaceName} is free` };
  if (link.kind === 'wireguard' || link.kind === 'tun')
    return {
      check,
      verdict: 'OK',
      finding: `${interfaceName} exists (${link.kind}): the agent's own, or one it will take over`,
    };
  return {
    check,
    verdict: 'FAIL',
    finding: `${interfaceName} exists and is a ${link.kind ?? 'non-WireGuard'} interface: the agent cannot use that name`,
    fix: `choose another name with interface: in agent.yaml (or --interface), or remove ${interfaceName} if it is a leftover`,
  };
}

/** The check, and whether a WireGuard interface of that name is up already (the agent runs). */
export async function checkInterface(
  input: DoctorInput,
  deps: DoctorDeps,
): Promise<{ result: CheckResult; isAgentRunning: boolean }> {
  const r = await deps.run(['ip', '-json', '-details', 'link', 'show', 'dev', input.interfaceName]);
  const link = r.exitCode === 0 ? parseJsonList<{ linkinfo?: { info_kind?: string } }>(r.stdout)[0] : undefined;
  const kind = link?.linkinfo?.info_kind ?? null;
  return {
    result: judgeInterfaceName(input.interfaceName, { exists: link !== undefined, kind }),
    isAgentRunning: kind === 'wireguard' || kind === 'tun',
  };
}
