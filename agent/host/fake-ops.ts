// The fake host's operations: their names, which of them write, and the command line each stands for.
import { HostCommandError } from '../../lib/errors.js';
import { CROSSLINK_NFT_TABLE, CROSSLINK_RT_PROTO } from './ports.js';

export const FAKE_OPS = [
  'wireguard.observe',
  'wireguard.create',
  'wireguard.sync',
  'wireguard.remove',
  'links.observe',
  'links.setUp',
  'links.addAddress',
  'links.delAddress',
  'links.observeAll',
  'links.addGateway',
  'routes.observe',
  'routes.apply',
  'firewall.observe',
  'firewall.replace',
  'firewall.remove',
  'firewall.counters',
  'sysctl.get',
  'sysctl.set',
] as const;
export type FakeOp = (typeof FAKE_OPS)[number];

/** Operations that change the host. A reconcile with nothing to do must call none of them. */
export const FAKE_WRITE_OPS: readonly FakeOp[] = [
  'wireguard.create',
  'wireguard.sync',
  'wireguard.remove',
  'links.setUp',
  'links.addAddress',
  'links.delAddress',
  'links.addGateway',
  'routes.apply',
  'firewall.replace',
  'firewall.remove',
  'sysctl.set',
];

/** The command line the Linux adapter would have run, so injected failures look like real ones. */
export const OP_ARGV: Record<FakeOp, string[]> = {
  'wireguard.observe': ['wg', 'show', 'IF', 'dump'],
  'wireguard.create': ['wireguard-go', 'IF'],
  'wireguard.sync': ['wg', 'syncconf', 'IF', 'FILE'],
  'wireguard.remove': ['ip', 'link', 'del', 'dev', 'IF'],
  'links.observe': ['ip', '-json', 'addr', 'show', 'dev', 'IF'],
  'links.setUp': ['ip', 'link', 'set', 'dev', 'IF', 'up'],
  'links.addAddress': ['ip', 'addr', 'replace', 'CIDR', 'dev', 'IF'],
  'links.delAddress': ['ip', 'addr', 'del', 'CIDR', 'dev', 'IF'],
  'links.observeAll': ['ip', '-json', 'addr', 'show'],
  'links.addGateway': ['ip', 'addr', 'replace', 'CIDR', 'dev', 'IF'],
  'routes.observe': ['ip', '-json', 'route', 'show', 'proto', String(CROSSLINK_RT_PROTO)],
  'routes.apply': ['ip', '-force', '-batch', '-'],
  'firewall.observe': ['nft', 'list', 'table', 'inet', CROSSLINK_NFT_TABLE],
  'firewall.replace': ['nft', '-f', 'FILE'],
  'firewall.remove': ['nft', 'delete', 'table', 'inet', CROSSLINK_NFT_TABLE],
  'firewall.counters': ['nft', '-j', 'list', 'counters', 'table', 'inet', CROSSLINK_NFT_TABLE],
  'sysctl.get': ['sysctl', '-n', 'KEY'],
  'sysctl.set': ['sysctl', '-w', 'KEY=VALUE'],
};

export interface Failure {
  remaining: number; // Infinity: until cleared
  exitCode: number;
  stderr: string;
  /** The command line the error names (default: OP_ARGV's). */
  argv?: readonly string[];
}

export interface FailureOptions {
  exitCode?: number;
  stderr?: string;
  argv?: readonly string[];
}

/** The error the Linux adapter's command for `op` would have thrown. */
export function fakeCommandError(op: FakeOp, stderr: string, exitCode = 1): HostCommandError {
  return new HostCommandError(OP_ARGV[op], exitCode, stderr);
}
