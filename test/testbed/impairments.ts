// Underlay impairments for the Testbed: blocked node pairs, packet loss and pulled cables, applied as
// nft rules and link states in the underlay router namespaces.
import { run } from './exec.js';
import type { NodeRef } from './testbed.js';
import type { TestbedNode, Topology, UnderlayPort } from './topology.js';

export interface UnderlayBlockOptions {
  /** What to drop between the two nodes. Default 'udp' (WireGuard), leaving ping and TCP alone. */
  proto?: 'udp' | 'all';
}

const FIREWALL_TABLE = 'crosslink_testbed';

/** The Testbed's underlay impairments; it delegates its blockUnderlay, setUnderlayLoss, ... here. */
export class UnderlayImpairments {
  private readonly blocks = new Map<string, { a: string; b: string; proto: 'udp' | 'all' }>();
  private readonly lossPercent = new Map<string, number>();

  constructor(
    private readonly topology: Topology,
    private readonly node: (ref: NodeRef) => TestbedNode,
  ) {}

  /** The node's cables, first underlay first. */
  private underlayPorts(ref: NodeRef): { name: string; ports: UnderlayPort[] } {
    const node = this.node(ref);
    const ports = this.topology.underlayPorts.get(node.name);
    if (!ports || (node.kind !== 'box' && node.kind !== 'controller'))
      throw new Error(`${node.name} is not attached to the underlay`);
    return { name: node.name, ports };
  }

  /** The underlay networks a node is cabled to. */
  underlaysOf(ref: NodeRef): string[] {
    return this.underlayPorts(ref).ports.map((p) => p.underlay);
  }

  /** Drops traffic between two underlay nodes (boxes or the controller), both ways, in the underlay router. */
  async blockUnderlay(a: NodeRef, b: NodeRef, opts: UnderlayBlockOptions = {}): Promise<void> {
    const [na, nb] = [this.underlayPorts(a).name, this.underlayPorts(b).name];
    const [x, y] = na <= nb ? [na, nb] : [nb, na];
    this.blocks.set(`${x}|${y}`, { a: x, b: y, proto: opts.proto ?? 'udp' });
    await this.applyUnderlayFirewall();
  }

  async unblockUnderlay(a: NodeRef, b: NodeRef): Promise<void> {
    const [x, y] = [this.underlayPorts(a).name, this.underlayPorts(b).name].sort();
    this.blocks.delete(`${x}|${y}`);
    await this.applyUnderlayFirewall();
  }

  /** Drops `percent` % of all packets crossing the node's underlay link, each direction; 0 removes it. */
  async setUnderlayLoss(node: NodeRef, percent: number): Promise<void> {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100)
      throw new Error('percent must be an integer 0..100');
    const { name } = this.underlayPorts(node);
    if (percent === 0) this.lossPercent.delete(name);
    else this.lossPercent.set(name, percent);
    await this.applyUnderlayFirewall();
  }

  /**
   * Pulls (false) or plugs back (true) the node's underlay cables: the router's side of each link.
   * `underlay` names one network; absent, every cable the node has.
   */
  async setUnderlayLinkUp(node: NodeRef, isUp: boolean, underlay?: string): Promise<void> {
    const { name, ports } = this.underlayPorts(node);
    const chosen = ports.filter((p) => underlay === undefined || p.underlay === underlay);
    if (chosen.length === 0) throw new Error(`${name} is not cabled to underlay "${underlay}"`);
    await Promise.all(chosen.map((p) => run(['ip', '-n', p.netns, 'link', 'set', p.interface, isUp ? 'up' : 'down'])));
  }

  /** Sets any interface in a node's namespace up or down (e.g. a box's lan0 to take it off its LAN). */
  async setLinkUp(node: NodeRef, ifname: string, isUp: boolean): Promise<void> {
    await run(['ip', '-n', this.node(node).netns, 'link', 'set', ifname, isUp ? 'up' : 'down']);
  }

  /** The nft script for one underlay router's impairments (default: the first); replaces the whole table atomically. */
  renderUnderlayFirewall(underlay: string = this.topology.underlay.network): string {
    const rules: string[] = [];
    const on = (name: string): UnderlayPort | undefined =>
      this.underlayPorts(name).ports.find((p) => p.underlay === underlay);
    for (const { a, b, proto } of [...this.blocks.values()].sort((p, q) =>
      `${p.a}|${p.b}`.localeCompare(`${q.a}|${q.b}`),
    )) {
      const pa = on(a);
      const pb = on(b);
      if (!pa || !pb) continue;
      const l4 = proto === 'udp' ? ' meta l4proto udp' : '';
      for (const [s, d] of [
        [pa, pb],
        [pb, pa],
      ] as const) {
        rules.push(
          `ip saddr ${s.address} ip daddr ${d.address}${l4} drop`,
          `ip6 saddr ${s.address6} ip6 daddr ${d.address6}${l4} drop`,
        );
      }
    }
    for (const [name, percent] of [...this.lossPercent.entries()].sort(([p], [q]) => p.localeCompare(q))) {
      const port = on(name);
      if (!port) continue;
      const sample = percent === 100 ? '' : ` numgen random mod 100 < ${percent}`;
      rules.push(`iifname "${port.interface}"${sample} drop`, `oifname "${port.interface}"${sample} drop`);
    }
    return [
      `table inet ${FIREWALL_TABLE}`,
      `delete table inet ${FIREWALL_TABLE}`,
      `table inet ${FIREWALL_TABLE} {`,
      '  chain forward {',
      '    type filter hook forward priority 0; policy accept;',
      ...rules.map((r) => `    ${r}`),
      '  }',
      '}',
      '',
    ].join('\n');
  }

  private async applyUnderlayFirewall(): Promise<void> {
    await Promise.all(
      this.topology.underlays.map((u) =>
        run(['nft', '-f', '-'], { netns: u.netns, input: this.renderUnderlayFirewall(u.network) }),
      ),
    );
  }
}
