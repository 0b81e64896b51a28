// What a machine needs to run the namespace testbed: root, the networking tools, python3 and the tun device.
import { existsSync } from 'node:fs';
import { onPath } from './leftovers.js';

/** What this machine lacks to run a testbed; empty when it can. Tests fail (not skip) on a non-empty list. */
export function testbedRequirements(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces need it): run the tests as root');
  const tools: [string, string][] = [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
    ['wireguard-go', 'wireguard-go'],
    ['wg', 'wireguard-tools'],
    ['ping', 'iputils-ping'],
    ['sysctl', 'procps'],
  ];
  for (const [cmd, pkg] of tools) if (!onPath(cmd)) missing.push(`${cmd} (Debian package ${pkg})`);
  if (!existsSync('/usr/bin/python3') && !onPath('python3'))
    missing.push('python3 (the traffic probes are python3 programs)');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun (wireguard-go needs the tun device)');
  return missing;
}
