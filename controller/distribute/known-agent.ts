// An inventory agent as the distributor knows it: inventory entry, credential, persisted generation.
import type { AgentRecord } from '../store/store.js';
import type { AgentName, InventoryAgent } from '../policy/types.js';

/** An enrolled, unrevoked agent. */
export interface Known {
  inventory: InventoryAgent;
  credentialHash: string;
  /** Persisted generation and hash: the floor for the next generation after a restart. */
  persistedGeneration: number;
  persistedHash: string;
}

export function knownOf(a: AgentRecord): Known {
  return {
    inventory: {
      name: a.name as AgentName,
      publicKey: a.publicKey,
      endpoint: a.endpoint,
      overlayAddress: a.overlayAddress,
      advertised: [...a.advertised],
      isHealthy: true,
      ...(a.endpoints.length > 0 ? { endpoints: a.endpoints.map((e) => ({ ...e })) } : {}),
      ...(a.isRelay ? { isRelay: true } : {}),
    },
    credentialHash: a.credentialHash,
    persistedGeneration: a.desiredGeneration,
    persistedHash: a.desiredHash,
  };
}
