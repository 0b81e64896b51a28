// A WatchConfig stream as the distributor sees it: its sink, why it ends, and its subscription.
import type { AgentConfig, TraceRequest } from '../../proto/gen/crosslink/v1/agent_pb.js';

/** Why the distributor ends a stream. The RPC layer maps all but 'stopping' to UNAUTHENTICATED. */
export type CloseReason = 'revoked' | 'deleted' | 'reenrolled' | 'stopping';

/** One open WatchConfig stream, as the distributor sees it. */
export interface ConfigSink {
  /** The credential hash the stream authenticated with: a re-enrolment (new credential) ends it. */
  readonly credentialHash: string;
  /** A new config for this agent (the same object goes to every stream of the agent: don't mutate). */
  push(config: AgentConfig): void;
  close(reason: CloseReason): void;
  /** A live trace's request for this agent (sent in order, after any config). Absent: cannot. */
  trace?(request: TraceRequest): void;
}

export interface Subscription {
  /** The agent's current config, to send first; undefined only before the first compile. */
  current: AgentConfig | undefined;
  unsubscribe(): void;
}

/** A registered sink and when it opened (the agent's connectedSince). */
export interface SinkEntry {
  sink: ConfigSink;
  sinceMs: number;
}

/** When the oldest of an agent's open streams began (a set is never empty while held). */
export function oldestSince(streams: ReadonlySet<SinkEntry>): number {
  let since = Infinity;
  for (const e of streams) if (e.sinceMs < since) since = e.sinceMs;
  return since;
}
