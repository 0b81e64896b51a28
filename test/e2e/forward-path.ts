// Which box a sending box's WireGuard gives a subnet to (the peer whose allowed IPs hold it), watched
// over time: `wg show IF dump` every `everyMs` in the sending box. For the failover scenario's "the
// gp side keeps the primary" and the moment a sending box moved the subnet.
import type { Fleet } from './fleet.js';

export interface PathChange {
  atMs: number;
  /** Agent name of the peer that has the subnet, or null when none has it. */
  to: string | null;
}

export class ForwardPath {
  private readonly log: PathChange[] = [];
  private isRunning = true;
  private readonly loop: Promise<void>;
  private current: string | null | undefined;

  private constructor(
    private readonly fleet: Fleet,
    private readonly sender: string,
    private readonly subnet: string,
    private readonly names: Map<string, string>,
    everyMs: number,
  ) {
    this.loop = (async () => {
      while (this.isRunning) {
        const started = Date.now();
        try {
          const to = await this.read();
          if (to !== this.current) {
            this.current = to;
            this.log.push({ atMs: started, to });
          }
        } catch {
          // the sender's wg is briefly unreadable (a restart): try again next round
        }
        const waitMs = everyMs - (Date.now() - started);
        if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      }
    })();
  }

  /** Watches `subnet` in `sender`'s WireGuard config; `candidates` are the agents that may have it. */
  static async start(
    fleet: Fleet,
    sender: string,
    subnet: string,
    candidates: readonly string[],
    everyMs = 100,
  ): Promise<ForwardPath> {
    const names = new Map<string, string>();
    for (const c of candidates) names.set((await fleet.showAgent(c)).publicKey, c);
    return new ForwardPath(fleet, sender, subnet, names, everyMs);
  }

  private async read(): Promise<string | null> {
    const peer = (await this.fleet.wgPeers(this.sender)).find((p) => p.allowedIps.includes(this.subnet));
    return peer ? (this.names.get(peer.publicKey) ?? peer.publicKey) : null;
  }

  /** The latest reading (undefined before the first). */
  get now(): string | null | undefined {
    return this.current;
  }

  changes(sinceMs = 0): PathChange[] {
    return this.log.filter((c) => c.atMs >= sinceMs);
  }

  /** Waits until the subnet is with `to`; the time it was first seen there, or null after timeoutMs. */
  async waitFor(to: string, timeoutMs: number): Promise<number | null> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.current === to) return this.log.findLast((c) => c.to === to)?.atMs ?? Date.now();
      await new Promise((r) => setTimeout(r, 20));
    }
    return null;
  }

  async stop(): Promise<void> {
    this.isRunning = false;
    await this.loop;
  }
}
