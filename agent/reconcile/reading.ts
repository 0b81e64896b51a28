// Reading the host for a run: every command at once, and, when a new config arrives, ahead of the
// run, while its desired state is computed (~70-100 ms of CPU for 1,000 peers and 10,000 tuples on
// a fresh agent): the commands are child processes, so they run meanwhile on the other core.
import type { Host } from '../host/ports.js';
import { SYSCTL_IPV4_FORWARD, SYSCTL_IPV6_FORWARD, type DesiredState } from './desired.js';
import type { ObservedState } from './plan.js';

/** What one observation read from the host, before the run's gateway decision is added. */
export interface HostReading {
  wireguard: ObservedState['wireguard'];
  link: ObservedState['link'];
  routes: ObservedState['routes'];
  firewall: ObservedState['firewall'];
  sysctls: Record<string, string>;
  interfaceAddresses: ObservedState['interfaceAddresses'];
}

/** Every sysctl a desired state may name (an early reading reads them all: two small files). */
const EARLY_SYSCTL_KEYS: readonly string[] = [SYSCTL_IPV4_FORWARD, SYSCTL_IPV6_FORWARD];

export class HostReader {
  /** A reading started ahead of the next run (startEarly()), and the run count it was started at. */
  private early: { reading: Promise<HostReading>; runNo: number } | null = null;
  /** An early reading set aside, still running (dropEarly()). */
  private dropped: Promise<HostReading> | null = null;

  /** `knownGateways`: the reconciler's gateway addresses of every desired state seen (live). */
  constructor(
    private readonly host: Host,
    private readonly interfaceName: string,
    private readonly knownGateways: ReadonlySet<string>,
  ) {}

  readFor(desired: DesiredState): Promise<HostReading> {
    return this.read(
      desired.interfaceName,
      desired.sysctls.map(({ key }) => key),
    );
  }

  /** Reads the host: every command at once. */
  private async read(ifname: string, sysctlKeys: readonly string[]): Promise<HostReading> {
    const links = this.host.links;
    const [wireguard, link, routes, firewall, sysctlValues, interfaceAddresses] = await Promise.all([
      this.host.wireguard.observe(ifname),
      links.observe(ifname),
      this.host.routes.observe(),
      this.host.firewall.observe(),
      Promise.all(sysctlKeys.map((key) => this.host.sysctl.get(key).catch(() => ''))),
      // Only when a gateway is or was wanted: boxes without one run no extra command.
      this.knownGateways.size > 0 && links.observeAll ? links.observeAll() : Promise.resolve(undefined),
    ]);
    const sysctls: Record<string, string> = {};
    sysctlKeys.forEach((key, i) => {
      sysctls[key] = sysctlValues[i] ?? '';
    });
    return { wireguard, link, routes, firewall, sysctls, interfaceAddresses };
  }

  /**
   * Starts reading the host for the next run (one at a time). The caller starts it only while no
   * run is in progress; the run uses it only if no other run started in between (takeEarly()).
   * `runNo`: runs completed so far.
   */
  startEarly(runNo: number): void {
    if (this.early) return;
    const reading = this.read(this.interfaceName, EARLY_SYSCTL_KEYS);
    reading.catch(() => undefined); // a failure is the run's to report, if it uses this reading
    this.early = { reading, runNo };
  }

  /** The early reading, if the run about to start (after `runNo` runs) may use it for `desired`
   *  (null: read anew). */
  async takeEarly(desired: DesiredState, runNo: number): Promise<HostReading | null> {
    const e = this.early;
    this.early = null;
    if (!e) return null;
    const isUsable =
      e.runNo === runNo &&
      desired.interfaceName === this.interfaceName &&
      desired.sysctls.every(({ key }) => EARLY_SYSCTL_KEYS.includes(key));
    if (!isUsable) {
      this.dropped = e.reading;
      return null;
    }
    const reading = await e.reading;
    // A gateway wanted for the first time (this config's): its addresses were not read.
    if (reading.interfaceAddresses === undefined && this.knownGateways.size > 0 && this.host.links.observeAll) {
      return { ...reading, interfaceAddresses: await this.host.links.observeAll() };
    }
    return reading;
  }

  /** Sets an early reading aside: it still runs, and the next run waits for it before reading
   *  (settleDropped()), so that it cannot finish after (and cache what was there before) that
   *  run's writes. */
  dropEarly(): void {
    if (this.early) this.dropped = this.early.reading;
    this.early = null;
  }

  /** Waits for a reading set aside, if any (its failure is nobody's to report). */
  async settleDropped(): Promise<void> {
    if (this.dropped) await this.dropped.catch(() => undefined);
    this.dropped = null;
  }
}
