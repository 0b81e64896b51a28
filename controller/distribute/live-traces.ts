// Live traces in flight (`crosslink trace --live`): sends each box its TraceRequest over its open
// config stream, collects the boxes' ReportTrace answers, and settles when all have answered or
// the bound has passed. A ReportTrace for an id this controller did not ask that agent for is
// refused (the RPC layer answers NOT_FOUND): answers are taken only from the boxes asked.
import { randomBytes } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { TraceRequestSchema, type TraceReport, type TraceRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { liveBoxes, type LiveBox, type LiveRequest } from '../trace/live-plan.js';

/** How long after the window the controller waits for the boxes' answers. */
export const ANSWER_GRACE_MS = 1500;
/** At most this many live traces at once over the controller: each makes every box on its path
 *  start a monitor and the source box send traffic. */
export const MAX_LIVE_TRACES = 8;

interface Pending {
  asked: Set<string>;
  answers: Map<string, Omit<LiveBox, 'agent' | 'role'>>;
  done: () => void;
}

export class LiveTraces {
  readonly #pending = new Map<string, Pending>();

  /** @param send pushes a request to the agent's open streams; false: none is open. */
  constructor(private readonly send: (agent: string, request: TraceRequest) => boolean) {}

  get inFlight(): number {
    return this.#pending.size;
  }

  /** Runs one live trace; resolves with the per-box table once all answered or the bound passed. */
  async run(requests: readonly LiveRequest[], windowMs: number): Promise<LiveBox[]> {
    const id = randomBytes(8).toString('hex');
    const unreachable = new Map<string, string>();
    let done: () => void = () => undefined;
    const finished = new Promise<void>((r) => (done = r));
    const p: Pending = { asked: new Set(), answers: new Map(), done };
    this.#pending.set(id, p);
    try {
      // Boxes that watch first, the sender last (it also waits a moment before it sends).
      for (const q of [...requests].reverse()) {
        const req = create(TraceRequestSchema, {
          id,
          role: q.role,
          sourcePrefix: q.sourcePrefix,
          target: q.target,
          protocol: q.protocol,
          port: q.port,
          sourcePort: q.sourcePort,
          windowMs,
          peerA: q.peerA,
          peerB: q.peerB,
        });
        if (this.send(q.agent, req)) p.asked.add(q.agent);
        else unreachable.set(q.agent, 'not connected to the controller: not asked');
      }
      if (p.asked.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([finished, new Promise<void>((r) => (timer = setTimeout(r, windowMs + ANSWER_GRACE_MS)))]);
        clearTimeout(timer);
      }
      return liveBoxes(requests, p.answers, unreachable, ANSWER_GRACE_MS);
    } finally {
      this.#pending.delete(id);
    }
  }

  /** An agent's answer; false when no trace in flight asked this agent for `report.id`. */
  deliver(agent: string, report: TraceReport): boolean {
    const p = this.#pending.get(report.id);
    if (!p || !p.asked.has(agent) || p.answers.has(agent)) return false;
    p.answers.set(agent, {
      verdict: report.verdict,
      rule: report.rule || null,
      direction: report.direction || null,
      packets: Number(report.packets),
      bytes: Number(report.bytes),
      replyPackets: Number(report.replyPackets),
      replyBytes: Number(report.replyBytes),
      detail: report.detail.slice(0, 1000),
    });
    if (p.answers.size === p.asked.size) p.done();
    return true;
  }
}
