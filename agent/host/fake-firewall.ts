// The fake host's nftables table: Crosslink's ruleset text and its named counters, as `nft` keeps them.
import { firewallFingerprint } from './firewall-fingerprint.js';
import { CROSSLINK_NFT_TABLE } from './ports.js';
import type { FirewallCounter, FirewallObserved } from '../reconcile/host-state.js';
import { fakeCommandError } from './fake-ops.js';

export class FakeFirewall {
  /** The installed ruleset text (null: no table). */
  table: string | null = null;
  private readonly counterValues = new Map<string, FirewallCounter>();

  observe(): FirewallObserved {
    if (this.table === null) return { exists: false, fingerprint: '' };
    return { exists: true, fingerprint: firewallFingerprint(this.table) };
  }

  replace(ruleset: string): string {
    if (
      !new RegExp(`^table inet ${CROSSLINK_NFT_TABLE} \\{`, 'm').test(ruleset) ||
      ruleset.split('{').length !== ruleset.split('}').length
    ) {
      throw fakeCommandError('firewall.replace', 'Error: syntax error');
    }
    this.table = ruleset;
    // Recreating the table recreates its counters at zero, as nft does.
    this.counterValues.clear();
    for (const [, name = ''] of ruleset.matchAll(/^\s*counter ([\w/.-]+) \{/gm))
      this.counterValues.set(name, { packets: 0n, bytes: 0n });
    return firewallFingerprint(ruleset);
  }

  /** Deletes the table (and with it its counters). */
  remove(): void {
    this.table = null;
    this.counterValues.clear();
  }

  counters(): Record<string, FirewallCounter> {
    return Object.fromEntries(
      [...this.counterValues].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, { ...v }]),
    );
  }

  /** Changes the installed table the way `nft insert rule ...` by hand would. */
  tamper(extraRule: string): void {
    if (this.table === null) throw new Error('no table to tamper with');
    this.table = this.table.replace(/(chain forward \{\n[^\n]*\n)/, `$1\t\t${extraRule}\n`);
    if (!this.table.includes(extraRule)) this.table += `\n# ${extraRule}\n`;
  }

  /** Deletes one set element by hand (the first element line of the table). */
  deleteElement(): void {
    if (this.table === null) throw new Error('no table to tamper with');
    const lines = this.table.split('\n');
    const i = lines.findIndex((l) => /^\t\t\t\S/.test(l));
    if (i < 0) throw new Error('no set element to delete');
    lines.splice(i, 1);
    this.table = lines.join('\n');
  }

  /** Traffic hitting a named counter. */
  bumpCounter(name: string, packets: number, bytes: number): void {
    const c = this.counterValues.get(name);
    if (!c) throw new Error(`no counter ${name}`);
    c.packets += BigInt(packets);
    c.bytes += BigInt(bytes);
  }
}
