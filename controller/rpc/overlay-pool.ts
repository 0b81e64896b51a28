// Overlay address allocation: the lowest free address of the pool, never the network address (nor,
// for IPv4, the broadcast address). Returned with the pool's prefix length, e.g. "100.64.0.7/10".
import { parseAddress, parsePrefixStrict } from '../policy/prefixes.js';
import { CrosslinkError } from '../../lib/errors.js';

export function allocateOverlayAddress(poolCidr: string, used: Iterable<string>): string {
  const r = parsePrefixStrict(poolCidr);
  if (!r.ok)
    throw new CrosslinkError('config_invalid', `overlay CIDR ${poolCidr}: ${r.message}`, [
      { path: 'overlay-cidr', message: r.message },
    ]);
  const { family, start, end, length } = r.prefix;
  const taken = new Set<bigint>();
  for (const u of used) {
    const a = parseAddress(u.split('/')[0]!);
    if (a && a.family === family) taken.add(a.value);
  }
  const last = family === 4 && end - start >= 3n ? end - 1n : end;
  for (let v = start + 1n; v <= last; v++) {
    if (!taken.has(v)) return `${format(family, v)}/${length}`;
  }
  throw new CrosslinkError('conflict', `overlay pool ${poolCidr} is full (${taken.size} addresses in use)`);
}

function format(family: 4 | 6, v: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((v >> s) & 0xffffn).toString(16));
  // Canonical (RFC 5952) form via the same parser the policy uses.
  return parseAddress(groups.join(':'))!.text;
}
