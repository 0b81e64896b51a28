// Keeps the config the agent enforces, as received, and saves it to the state dir once it has
// been applied without errors: that saved copy is what the agent enforces at its next start,
// before it reaches the controller (fail static).
import type { Logger } from 'pino';
import type { AgentConfig } from '../proto/gen/crosslink/v1/agent_pb.js';
import type { ApplyOutcome } from './reconcile/loop.js';
import type { StateDir } from './state.js';

export class ConfigSaver {
  private config: AgentConfig | null;
  /** Content hash of the config on disk; '' for none. */
  private savedHash: string;

  /** `saved`: the config loaded from the state dir at start (already on disk). */
  constructor(
    private readonly deps: { state: Pick<StateDir, 'saveConfig'>; log: Logger },
    saved: AgentConfig | null,
  ) {
    this.config = saved;
    this.savedHash = saved?.contentHash ?? '';
  }

  /** The config being enforced: the last one accepted, else the saved one. */
  get current(): AgentConfig | null {
    return this.config;
  }

  /** A config from the controller that the reconciler accepted. */
  accept(config: AgentConfig): void {
    this.config = config;
  }

  /** The enforced config an apply outcome belongs to; null when it belongs to another. */
  configOf(o: Pick<ApplyOutcome, 'contentHash'>): AgentConfig | null {
    return this.config !== null && this.config.contentHash === o.contentHash ? this.config : null;
  }

  /** Saves the config an apply without errors enforced, unless it is on disk already. */
  afterApply(o: Pick<ApplyOutcome, 'contentHash' | 'errors'>): void {
    if (o.errors.length > 0 || o.contentHash === this.savedHash) return;
    const config = this.configOf(o);
    if (config === null) return;
    this.savedHash = o.contentHash;
    this.deps.state
      .saveConfig(config)
      .catch((err: unknown) => this.deps.log.error({ err }, 'could not save the applied config'));
  }
}
