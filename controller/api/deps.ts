// What the REST API receives from the composition root (controller/main.ts).
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { DistributionPort } from '../distribute/port.js';
import type { Store } from '../store/store.js';

export interface ApiDeps {
  store: Store;
  distribution: DistributionPort;
  log: Logger;
  clock: Clock;
  /** The controller URLs agents dial (one per network it sits on), written into join tokens, e.g. ["https://10.0.0.1:8443"]. */
  controllerUrls: string[];
  /** sha256 of the CA certificate's DER, lowercase hex; written into join tokens. */
  caFingerprint: string;
  caCertPem: string;
}
