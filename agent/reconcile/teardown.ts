// `crosslink agent down`: remove everything the agent created on the box — its interface (and
// wireguard-go), its routes (protocol 147) and its nft table. Sysctls are left as they are: the
// agent does not know what they were before, and switching forwarding off could cut other traffic.
import type { Host } from '../host/ports.js';
import { toFailure, type ApplyFailure } from './loop.js';

export async function teardown(host: Host, ifname: string): Promise<ApplyFailure[]> {
  const errors: ApplyFailure[] = [];
  const attempt = async (step: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(toFailure(step, e));
    }
  };
  // The interface first: with it gone nothing is forwarded through the overlay any more, so removing
  // the firewall afterwards never leaves a window with tunnels up and no policy.
  await attempt('wireguard.remove', () => host.wireguard.remove(ifname));
  await attempt('routes', async () => {
    const del = await host.routes.observe();
    if (del.length > 0) await host.routes.apply({ add: [], del });
  });
  await attempt('firewall', () => host.firewall.remove());
  return errors;
}
