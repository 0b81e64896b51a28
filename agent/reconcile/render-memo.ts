// Rendering 10,000 tuples takes 100-600 ms here (and validating them again 100 ms more), and most
// new configs (a peer joins, a route moves) carry the same firewall as the last one. So the
// renderer is remembered for the last input: the same Firewall message (compared by its wire
// bytes, a few ms) for the same interface gives the same text without rendering again, and
// `isRendered` tells desiredState() that this firewall has been validated already (it is only ever
// rendered after it validated). Pure: no I/O.
import { toBinary } from '@bufbuild/protobuf';
import { FirewallSchema, type Firewall } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { FirewallRenderer } from './desired.js';

export function memoizeFirewallRenderer(render: FirewallRenderer): FirewallRenderer {
  let last: { wgInterface: string; bytes: Uint8Array; ruleset: string } | null = null;
  // The bytes of the message last asked about: isRendered() and the render that follows share them.
  let seen: { fw: Firewall; bytes: Uint8Array } | null = null;
  const bytesOf = (fw: Firewall): Uint8Array => {
    if (seen?.fw !== fw) seen = { fw, bytes: toBinary(FirewallSchema, fw) };
    return seen.bytes;
  };
  const isRendered = (fw: Firewall, opts: { wgInterface: string }): boolean =>
    last !== null && last.wgInterface === opts.wgInterface && Buffer.compare(last.bytes, bytesOf(fw)) === 0;
  const memo: FirewallRenderer = (fw, opts) => {
    if (isRendered(fw, opts)) return last!.ruleset;
    // A throwing render leaves the last good entry in place.
    const ruleset = render(fw, opts);
    last = { wgInterface: opts.wgInterface, bytes: bytesOf(fw), ruleset };
    return ruleset;
  };
  memo.isRendered = isRendered;
  return memo;
}
