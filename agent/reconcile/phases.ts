// A plan's steps as the reconciler runs them: in phases of concurrent lanes (stepPhases), with the
// CPU work of the peer and route steps done ahead (RunPrep), and a failure per step (toFailure).
import { HostCommandError } from '../../lib/errors.js';
import type { Host } from '../host/ports.js';
import type { RouteChanges } from './host-state.js';
import type { Step } from './plan.js';

/** One failure of a run, in the shape the Report carries (proto ApplyError). */
export interface ApplyFailure {
  /** "observe", "wireguard.create", "link", "address", "firewall", "wireguard.sync", "routes", "sysctl" or "config". */
  step: string;
  /** The command line that failed ("" when the failure was not a host command). */
  command: string;
  /** Exit code of the command; -1 when there was none. */
  exitCode: number;
  stderr: string;
  /** true: the config itself is invalid and will not be retried. */
  isTerminal: boolean;
  message: string;
}

export function stepName(s: Step): string {
  switch (s.kind) {
    case 'link.up':
      return 'link';
    case 'address.add':
    case 'address.del':
      return 'address';
    case 'firewall.replace':
      return 'firewall';
    case 'sysctl.set':
      return 'sysctl';
    case 'gateway.add':
    case 'gateway.del':
      return 'gateway';
    case 'wireguard.create':
    case 'wireguard.sync':
    case 'routes':
      return s.kind;
  }
}

/**
 * The plan's steps as phases of concurrent lanes; each lane runs in order, each phase after the
 * one before. On a fresh box the firewall load (the longest command) overlaps creating the
 * interface, and the peers overlap the routes. What stays ordered: the firewall is complete
 * before any peer, route, forwarding or gateway step starts (no packet crosses the box before
 * the policy is enforced); the interface exists and is up before peers and routes; forwarding
 * and gateways come last, as in plan().
 */
export function stepPhases(steps: readonly Step[]): Step[][][] {
  const of = (kinds: readonly string[]) => steps.filter((s) => kinds.includes(s.kind));
  const phases: Step[][][] = [
    [of(['wireguard.create', 'link.up', 'address.add', 'address.del']), of(['firewall.replace'])],
    [of(['wireguard.sync']), of(['routes'])],
    [of(['sysctl.set'])],
    [of(['gateway.add', 'gateway.del'])],
  ];
  const placed = phases.flat(2).length;
  if (placed !== steps.length) throw new Error(`stepPhases: ${steps.length - placed} step(s) of an unknown kind`);
  return phases.map((lanes) => lanes.filter((l) => l.length > 0)).filter((lanes) => lanes.length > 0);
}

export function toFailure(step: string, e: unknown): ApplyFailure {
  if (e instanceof HostCommandError) {
    return {
      step,
      command: e.argv.join(' '),
      exitCode: e.exitCode,
      stderr: e.stderr,
      isTerminal: false,
      message: e.message,
    };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { step, command: '', exitCode: -1, stderr: message, isTerminal: false, message };
}

/**
 * The CPU work of a run's peer and route steps (rendering the syncconf file and the route batch),
 * done ahead through the ports' prepare(): while the firewall commits when the plan has a firewall
 * step (on a fresh box the loop idles ~100 ms there, and the peers and routes then start at once),
 * else right before those steps. run() is idempotent; a failure in it is left to the step itself,
 * which does the work again and reports it.
 */
export class RunPrep {
  private isDone = false;
  private readonly changes = new Map<Step, RouteChanges>();

  constructor(
    private readonly host: Host,
    private readonly steps: readonly Step[],
  ) {}

  static isPrepared(s: Step): boolean {
    return s.kind === 'wireguard.sync' || s.kind === 'routes';
  }

  /** The change set of a routes step, one object per step (what routes.prepare() was given). */
  routeChanges(step: Step & { kind: 'routes' }): RouteChanges {
    let c = this.changes.get(step);
    if (!c) this.changes.set(step, (c = { add: step.add, del: step.del }));
    return c;
  }

  run(): void {
    if (this.isDone) return;
    this.isDone = true;
    for (const s of this.steps) {
      try {
        if (s.kind === 'wireguard.sync') this.host.wireguard.prepare?.(s.ifname, s.device);
        else if (s.kind === 'routes') this.host.routes.prepare?.(this.routeChanges(s));
      } catch {
        // reported by the step
      }
    }
  }
}
