// Who holds a LAN's virtual gateway, box by box, as a timeline. One `ip -ts -o monitor link address`
// per box (in its namespace) reports each address and link change as it happens, with the time
// `ip` saw it: finer than sampling every 20 ms and without 100 `ip` processes a second. A box holds
// the gateway while the address is on its LAN interface and that interface is up (a box whose power
// was cut keeps the address on a dead link; it holds nothing). The state at start comes from one
// `ip -j addr` read after the monitors run, so no change falls between the two.
import type { SpawnedProcess } from '../testbed/exec.js';
import type { Testbed } from '../testbed/testbed.js';
import { summariseHolders, type HolderEvent, type HolderSummary } from './loss-window.js';

interface Watched {
  box: string;
  ifname: string;
  proc: SpawnedProcess;
  hasAddress: boolean;
  isUp: boolean;
  rest: string;
}

/** "[2026-12-05T13:44:11.453173] ..." -> epoch ms (ip prints local time). */
function stampMs(line: string): number | null {
  const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})\d*\]/.exec(line);
  if (!m) return null;
  const t = new Date(`${m[1]}.${m[2]}`).getTime();
  return Number.isNaN(t) ? null : t;
}

export class GatewayHolders {
  private readonly events: HolderEvent[] = [];
  private readonly watched: Watched[];

  private constructor(
    private readonly bed: Testbed,
    readonly gateway: string,
    watched: Watched[],
  ) {
    this.watched = watched;
  }

  /** Watches `gateway` (IPv4, no prefix length) on each box's LAN interface (default lan0). */
  static async start(
    bed: Testbed,
    gateway: string,
    boxes: ReadonlyArray<{ box: string; ifname?: string }>,
  ): Promise<GatewayHolders> {
    const watched = boxes.map(({ box, ifname }) => ({
      box,
      ifname: ifname ?? 'lan0',
      proc: bed.spawn(box, ['ip', '-ts', '-o', 'monitor', 'link', 'address']),
      hasAddress: false,
      isUp: false,
      rest: '',
    }));
    const holders = new GatewayHolders(bed, gateway, watched);
    // ip monitor prints nothing when it is ready; give it time to subscribe before the first read.
    await new Promise((r) => setTimeout(r, 300));
    for (const w of watched) w.proc.child.stdout?.on('data', (b: Buffer) => holders.take(w, b.toString('utf8')));
    await Promise.all(watched.map((w) => holders.readNow(w)));
    return holders;
  }

  private isHolder(w: Watched): boolean {
    return w.hasAddress && w.isUp;
  }

  /** The current state of one box, read with `ip -j addr` (also records a change it finds). */
  private async readNow(w: Watched): Promise<void> {
    const r = await this.bed.exec(w.box, ['ip', '-j', 'addr', 'show', 'dev', w.ifname], { check: false });
    const atMs = Date.now();
    const info = (JSON.parse(r.stdout || '[]') as Array<{ flags?: string[]; addr_info?: Array<{ local: string }> }>)[0];
    this.apply(w, atMs, {
      hasAddress: (info?.addr_info ?? []).some((a) => a.local === this.gateway),
      isUp: (info?.flags ?? []).includes('UP'),
    });
  }

  private apply(w: Watched, atMs: number, change: { hasAddress?: boolean; isUp?: boolean }): void {
    const was = this.isHolder(w);
    if (change.hasAddress !== undefined) w.hasAddress = change.hasAddress;
    if (change.isUp !== undefined) w.isUp = change.isUp;
    const now = this.isHolder(w);
    if (now !== was) this.events.push({ atMs, box: w.box, isHolder: now });
  }

  private take(w: Watched, text: string): void {
    const lines = (w.rest + text).split('\n');
    w.rest = lines.pop() ?? '';
    for (const line of lines) {
      const atMs = stampMs(line) ?? Date.now();
      const body = line.replace(/^\[[^\]]*\]\s*/, '');
      const isDeleted = body.startsWith('Deleted ');
      const rest = isDeleted ? body.slice('Deleted '.length) : body;
      // "3: lan0    inet 10.50.1.1/24 scope global secondary lan0\ ..." (address)
      const addr = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(rest);
      if (addr) {
        if (addr[1] === w.ifname && addr[2] === this.gateway) this.apply(w, atMs, { hasAddress: !isDeleted });
        continue;
      }
      // "3: lan0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ... state UP ..." (link)
      const link = /^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>/.exec(rest);
      if (link && link[1] === w.ifname) this.apply(w, atMs, { isUp: !isDeleted && link[2]!.split(',').includes('UP') });
    }
  }

  /** Boxes that hold the gateway now (as far as the events have arrived), sorted. */
  holders(): string[] {
    return this.watched
      .filter((w) => this.isHolder(w))
      .map((w) => w.box)
      .sort();
  }

  /** Re-reads every box (a check that the event stream missed nothing); returns the holders. */
  async refresh(): Promise<string[]> {
    await Promise.all(this.watched.map((w) => this.readNow(w)));
    return this.holders();
  }

  /** Holders at `atMs`, from the events. */
  holdersAt(atMs: number): string[] {
    return summariseHolders(this.initialHolders(), this.events, atMs, atMs).holdersAtEnd;
  }

  /** The timeline between startMs and endMs (default now). */
  summary(startMs: number, endMs = Date.now()): HolderSummary {
    return summariseHolders(this.initialHolders(), this.events, startMs, endMs);
  }

  /** Every change so far. */
  changes(sinceMs = 0): HolderEvent[] {
    return this.events.filter((e) => e.atMs >= sinceMs);
  }

  /** Waits until exactly `boxes` hold the gateway; false after timeoutMs. */
  async waitFor(boxes: readonly string[], timeoutMs: number): Promise<boolean> {
    const want = [...boxes].sort().join(',');
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.holders().join(',') === want) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return (await this.refresh()).join(',') === want;
  }

  // The events start from "nobody holds"; the first read records the initial holders as events.
  private initialHolders(): string[] {
    return [];
  }

  async stop(): Promise<void> {
    await Promise.all(this.watched.map((w) => this.bed.kill(w.proc.pid, { signal: 'SIGKILL' })));
  }
}
