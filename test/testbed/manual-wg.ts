// WireGuard by hand with wireguard-go, wg and ip inside testbed boxes: proves the harness supports
// what the agent will do, and is the "floor" the end-to-end benchmark compares convergence with
// (the same change made directly, step by step, each step timeable on its own).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sleep, type SpawnedProcess } from './exec.js';
import type { Box, Testbed } from './testbed.js';

export interface WgKeyPair {
  privateKey: string;
  publicKey: string;
}

/** `wg genkey` then `wg pubkey`. Pure computation; touches no network. */
export async function generateKeyPair(): Promise<WgKeyPair> {
  const privateKey = (await run(['wg', 'genkey'])).stdout.trim();
  const publicKey = (await run(['wg', 'pubkey'], { input: `${privateKey}\n` })).stdout.trim();
  return { privateKey, publicKey };
}

export interface WgDevice {
  box: Box;
  ifname: string;
  process: SpawnedProcess;
}

/**
 * Starts wireguard-go in the box's namespace in the foreground (so the testbed tracks its PID) and
 * waits until the tun interface exists. Default interface name: box.wgInterface.
 */
export async function startWireGuardGo(
  bed: Testbed,
  box: Box,
  opts: { ifname?: string; timeoutMs?: number } = {},
): Promise<WgDevice> {
  const ifname = opts.ifname ?? box.wgInterface;
  const proc = bed.spawn(box, ['wireguard-go', '-f', ifname], {
    env: { LOG_LEVEL: 'error', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' },
    logFile: `wireguard-go-${ifname}.log`,
  });
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  for (;;) {
    const r = await bed.exec(box, ['wg', 'show', ifname, 'public-key'], { check: false });
    // `wg show` answers once the UAPI socket is up, which wireguard-go opens after creating the tun.
    if (r.code === 0) break;
    if (!proc.isRunning)
      throw new Error(`wireguard-go ${ifname} in ${box.netns} exited: ${JSON.stringify(proc.exitStatus)}`);
    if (Date.now() > deadline) throw new Error(`wireguard-go ${ifname} in ${box.netns} not ready: ${r.stderr.trim()}`);
    await sleep(20);
  }
  return { box, ifname, process: proc };
}

export interface WgInterfaceConfig {
  privateKey: string;
  listenPort: number;
}

/** Sets the private key (from a 0600 file: wg reads no key from a pipe) and listen port, and brings the link up. */
export async function configureInterface(bed: Testbed, dev: WgDevice, cfg: WgInterfaceConfig): Promise<void> {
  const keyFile = join(bed.workDir, `${dev.ifname}.key`);
  writeFileSync(keyFile, `${cfg.privateKey}\n`, { mode: 0o600 });
  await bed.exec(dev.box, ['wg', 'set', dev.ifname, 'private-key', keyFile, 'listen-port', String(cfg.listenPort)]);
  await bed.exec(dev.box, ['ip', 'link', 'set', dev.ifname, 'up']);
}

export interface WgPeerConfig {
  publicKey: string;
  /** "address:port" of the peer on the underlay. */
  endpoint?: string;
  allowedIPs: string[];
  persistentKeepaliveSeconds?: number;
}

export async function addPeer(bed: Testbed, dev: WgDevice, peer: WgPeerConfig): Promise<void> {
  const argv = ['wg', 'set', dev.ifname, 'peer', peer.publicKey, 'allowed-ips', peer.allowedIPs.join(',')];
  if (peer.endpoint) argv.push('endpoint', peer.endpoint);
  if (peer.persistentKeepaliveSeconds !== undefined)
    argv.push('persistent-keepalive', String(peer.persistentKeepaliveSeconds));
  await bed.exec(dev.box, argv);
}

export async function removePeer(bed: Testbed, dev: WgDevice, publicKey: string): Promise<void> {
  await bed.exec(dev.box, ['wg', 'set', dev.ifname, 'peer', publicKey, 'remove']);
}

/** Routes the prefixes into the WireGuard interface (`ip route replace`, so repeating is harmless). */
export async function addRoutes(bed: Testbed, dev: WgDevice, prefixes: readonly string[]): Promise<void> {
  for (const p of prefixes) await bed.exec(dev.box, ['ip', 'route', 'replace', p, 'dev', dev.ifname]);
}

export async function removeRoutes(bed: Testbed, dev: WgDevice, prefixes: readonly string[]): Promise<void> {
  for (const p of prefixes) await bed.exec(dev.box, ['ip', 'route', 'del', p, 'dev', dev.ifname], { check: false });
}

/** Latest handshake per peer public key, in epoch seconds (0: never). From `wg show IF latest-handshakes`. */
export async function latestHandshakes(bed: Testbed, dev: WgDevice): Promise<Map<string, number>> {
  const r = await bed.exec(dev.box, ['wg', 'show', dev.ifname, 'latest-handshakes']);
  const out = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const [key, seconds] = line.trim().split(/\s+/);
    if (key && seconds) out.set(key, Number(seconds));
  }
  return out;
}

/** Polls until the peer has completed a handshake (after `sinceEpochSeconds`, default any); returns the wait in ms. */
export async function waitForHandshake(
  bed: Testbed,
  dev: WgDevice,
  publicKey: string,
  opts: { timeoutMs?: number; sinceEpochSeconds?: number } = {},
): Promise<number> {
  const start = Date.now();
  const deadline = start + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const at = (await latestHandshakes(bed, dev)).get(publicKey) ?? 0;
    if (at > 0 && at >= (opts.sinceEpochSeconds ?? 0)) return Date.now() - start;
    if (Date.now() > deadline)
      throw new Error(`no WireGuard handshake on ${dev.ifname} in ${dev.box.netns} with ${publicKey}`);
    await sleep(20);
  }
}

/** Deletes the interface (wireguard-go exits when its tun goes) and waits for the process to end. */
export async function deleteWireGuard(bed: Testbed, dev: WgDevice): Promise<void> {
  await bed.exec(dev.box, ['ip', 'link', 'del', dev.ifname], { check: false });
  const timer = setTimeout(() => void bed.kill(dev.process.pid).catch(() => {}), 3000);
  await dev.process.wait();
  clearTimeout(timer);
}

export interface TunnelEnd extends WgDevice {
  keys: WgKeyPair;
  listenPort: number;
  /** Prefixes this end serves: the peer's AllowedIPs for it, and the peer's routes into the tunnel. */
  prefixes: string[];
}

export interface ManualTunnel {
  a: TunnelEnd;
  b: TunnelEnd;
  close(): Promise<void>;
}

export interface ManualTunnelOptions {
  /** Default: every LAN subnet (IPv4 and IPv6) of each box. */
  aPrefixes?: string[];
  bPrefixes?: string[];
  /** UDP listen port on both boxes. Default 51820. */
  listenPort?: number;
  persistentKeepaliveSeconds?: number;
}

function lanPrefixes(box: Box): string[] {
  return box.lans.flatMap((l) => (l.subnet6 ? [l.subnet, l.subnet6] : [l.subnet]));
}

/**
 * A two-box WireGuard tunnel made by hand: wireguard-go on each box, keys from wg genkey, each the
 * other's peer over the underlay, and routes for the other side's prefixes into the tunnel.
 * No addresses on the tunnel interfaces: the boxes only forward between their LANs, sources kept.
 */
export async function manualTunnel(
  bed: Testbed,
  boxA: Box,
  boxB: Box,
  opts: ManualTunnelOptions = {},
): Promise<ManualTunnel> {
  const listenPort = opts.listenPort ?? 51820;
  const [keysA, keysB, devA, devB] = await Promise.all([
    generateKeyPair(),
    generateKeyPair(),
    startWireGuardGo(bed, boxA),
    startWireGuardGo(bed, boxB),
  ]);
  const a: TunnelEnd = { ...devA, keys: keysA, listenPort, prefixes: opts.aPrefixes ?? lanPrefixes(boxA) };
  const b: TunnelEnd = { ...devB, keys: keysB, listenPort, prefixes: opts.bPrefixes ?? lanPrefixes(boxB) };
  const keepalive =
    opts.persistentKeepaliveSeconds === undefined
      ? {}
      : { persistentKeepaliveSeconds: opts.persistentKeepaliveSeconds };
  for (const [self, other] of [
    [a, b],
    [b, a],
  ] as const) {
    await configureInterface(bed, self, { privateKey: self.keys.privateKey, listenPort });
    await addPeer(bed, self, {
      publicKey: other.keys.publicKey,
      endpoint: `${other.box.wanAddress}:${listenPort}`,
      allowedIPs: other.prefixes,
      ...keepalive,
    });
    await addRoutes(bed, self, other.prefixes);
  }
  return {
    a,
    b,
    close: async () => {
      await Promise.all([deleteWireGuard(bed, a), deleteWireGuard(bed, b)]);
    },
  };
}
