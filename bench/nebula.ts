// Debian's Nebula on a namespace testbed, shared by bench:failover (bench/failover-nebula.ts) and
// bench:vs-nebula (bench/vs-nebula.ts): the version, a CA and one certificate per node (nebula-cert),
// and one config file per node. The caller says which node is the lighthouse (and relay), which
// subnets each certificate carries and which unsafe routes each node installs; the firewall is
// stateful, so an inbound rule for the port is all a one-way test needs.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** UDP port every node listens on (Nebula's default). */
export const NEBULA_PORT = 4242;

export interface NebulaNode {
  /** Testbed box the node runs in; also its certificate name and file names. */
  box: string;
  /** Overlay address, without prefix length (the certificate gets /24). */
  ip: string;
  /** LAN prefixes the certificate lets this node route (`-subnets`). */
  subnets: readonly string[];
}

export interface NebulaRoute {
  route: string;
  /** Overlay address of the node that carries the route. */
  via: string;
}

/** One inbound firewall rule; `port: 'any'` with `proto: 'any'` opens everything. */
export interface NebulaRule {
  port: number | 'any';
  proto: 'tcp' | 'udp' | 'icmp' | 'any';
}

export interface NebulaConfigOptions {
  dir: string;
  node: NebulaNode;
  lighthouse: NebulaNode;
  /** The lighthouse's underlay address this node reaches it at. */
  lighthouseAddress: string;
  /** The lighthouse also relays (Nebula >= 1.6.0) and the others use it. */
  isRelayed?: boolean;
  routes?: readonly NebulaRoute[];
  /** Default: everything allowed. */
  inbound?: readonly NebulaRule[];
  /** TUN MTU; Nebula's default is 1300. */
  mtu?: number;
  dev?: string;
}

export function nebulaVersion(): string {
  const r = spawnSync('nebula', ['-version'], { encoding: 'utf8' });
  return /Version: (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'not installed';
}

function nebulaCert(dir: string, args: string[]): void {
  const r = spawnSync('nebula-cert', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nebula-cert ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

/** A CA and one signed certificate + key per node, in `dir` (ca.crt, <box>.crt, <box>.key). */
export function nebulaPki(dir: string, nodes: readonly NebulaNode[]): void {
  nebulaCert(dir, ['ca', '-name', 'crosslink-bench', '-out-crt', 'ca.crt', '-out-key', 'ca.key']);
  for (const n of nodes) {
    nebulaCert(dir, [
      'sign',
      '-name',
      n.box,
      '-ip',
      `${n.ip}/24`,
      ...(n.subnets.length ? ['-subnets', n.subnets.join(',')] : []),
      '-ca-crt',
      'ca.crt',
      '-ca-key',
      'ca.key',
      '-out-crt',
      `${n.box}.crt`,
      '-out-key',
      `${n.box}.key`,
    ]);
  }
}

/** Writes <dir>/<box>.yml for one node (mode 0600: it names the key) and returns its path. */
export function nebulaConfig(o: NebulaConfigOptions): string {
  const { dir, node, lighthouse } = o;
  const isHub = node.box === lighthouse.box;
  const routes = o.routes ?? [];
  const inbound = o.inbound ?? [{ port: 'any', proto: 'any' }];
  const lines = [
    'pki:',
    `  ca: ${join(dir, 'ca.crt')}`,
    `  cert: ${join(dir, `${node.box}.crt`)}`,
    `  key: ${join(dir, `${node.box}.key`)}`,
    'static_host_map:',
    `  "${lighthouse.ip}": ["${o.lighthouseAddress}:${NEBULA_PORT}"]`,
    'lighthouse:',
    `  am_lighthouse: ${isHub}`,
    '  interval: 10',
    `  hosts: ${isHub ? '[]' : `["${lighthouse.ip}"]`}`,
    'listen:',
    '  host: 0.0.0.0',
    `  port: ${NEBULA_PORT}`,
    'punchy:',
    '  punch: true',
    ...(o.isRelayed
      ? [
          'relay:',
          `  am_relay: ${isHub}`,
          `  use_relays: ${!isHub}`,
          ...(isHub ? [] : [`  relays: ["${lighthouse.ip}"]`]),
        ]
      : []),
    'tun:',
    `  dev: ${o.dev ?? 'neb0'}`,
    `  mtu: ${o.mtu ?? 1300}`,
    ...(routes.length
      ? ['  unsafe_routes:', ...routes.flatMap((r) => [`    - route: ${r.route}`, `      via: ${r.via}`])]
      : []),
    'logging:',
    '  level: info',
    'firewall:',
    '  outbound:',
    '    - { port: any, proto: any, host: any }',
    '  inbound:',
    ...inbound.map((r) => `    - { port: ${r.port}, proto: ${r.proto}, host: any }`),
    '',
  ];
  const file = join(dir, `${node.box}.yml`);
  writeFileSync(file, lines.join('\n'), { mode: 0o600 });
  return file;
}
