// bench:agent's floor: the state the agent reaches, applied by hand from pre-rendered files (wg, ip, nft).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../proto/gen/crosslink/v1/agent_pb.js';
import { renderFirewall } from '../agent/host/firewall-render.js';
import { CROSSLINK_NFT_TABLE } from '../agent/host/ports.js';
import { killPid, sh } from '../agent/host/linux/netns.fixture.js';
import { renderWgConfig } from '../agent/host/wg-config.js';
import { routeBatch } from '../agent/host/linux/routes.js';
import { desiredState, type AgentSettings } from '../agent/reconcile/desired.js';
import { addNetns, newIfname, pids, removeNetns, workDir } from './agent-netns.js';

// The same state by hand, inside a fresh namespace, timed by the shell itself (no
// `ip netns exec` or node in the figures).

const FLOOR_SCRIPT = `
set -e
IF=$1 DIR=$2
now() { date +%s%N; }
t0=$(now)
WG_PROCESS_FOREGROUND=1 wireguard-go "$IF" >/dev/null 2>&1 &
echo "pid $!"
until [ -S /var/run/wireguard/$IF.sock ] && ip link show dev "$IF" >/dev/null 2>&1; do sleep 0.01; done
t1=$(now)
ip link set dev "$IF" mtu 1420 up
ip addr add 100.64.0.1/16 dev "$IF"
t2=$(now)
nft -f "$DIR/fw.nft"
t3=$(now)
wg syncconf "$IF" "$DIR/wg.conf"
t4=$(now)
ip -batch "$DIR/routes.batch"
t5=$(now)
echo 1 > /proc/sys/net/ipv4/ip_forward
t6=$(now)
echo "ms create=$(( (t1-t0)/1000000 )) link=$(( (t2-t1)/1000000 )) nft=$(( (t3-t2)/1000000 )) wg=$(( (t4-t3)/1000000 )) routes=$(( (t5-t4)/1000000 )) sysctl=$(( (t6-t5)/1000000 ))"
`;

export interface FloorResult {
  totalMs: number;
  parts: Record<string, number>;
}

/** The floor for `config`; `privateKey` is box A's. */
export function floor(
  config: AgentConfig,
  settingsFor: (ifname: string) => AgentSettings,
  privateKey: string,
): FloorResult {
  const ns = addNetns('F');
  const ifname = newIfname();
  const d = desiredState(config, settingsFor(ifname), renderFirewall);
  const dir = mkdtempSync(join(workDir, 'floor-'));
  const name = `inet ${CROSSLINK_NFT_TABLE}`;
  writeFileSync(join(dir, 'fw.nft'), `add table ${name}\ndelete table ${name}\n${d.firewall.ruleset}`, { mode: 0o600 });
  writeFileSync(join(dir, 'wg.conf'), renderWgConfig(privateKey, d.wireguard.listenPort, d.wireguard.peers), {
    mode: 0o600,
  });
  writeFileSync(join(dir, 'routes.batch'), routeBatch({ add: d.routes, del: [] }));
  const r = sh(['ip', 'netns', 'exec', ns, 'bash', '-c', FLOOR_SCRIPT, 'floor', ifname, dir]);
  if (r.code !== 0) throw new Error(`floor failed: ${r.stderr}`);
  const pid = /pid (\d+)/.exec(r.stdout);
  if (pid) pids.add(Number(pid[1]));
  const parts: Record<string, number> = {};
  for (const m of (/ms (.*)/.exec(r.stdout)?.[1] ?? '').matchAll(/(\w+)=(\d+)/g)) parts[m[1]!] = Number(m[2]);
  removeNetns(ns);
  if (pid) {
    killPid(Number(pid[1]));
    pids.delete(Number(pid[1]));
  }
  return { totalMs: Object.values(parts).reduce((a, b) => a + b, 0), parts };
}
