// The memory settings the agent unit gives node (deploy/systemd/crosslink-agent.service's
// Environment= lines for NODE_OPTIONS, MALLOC_ARENA_MAX, GLIBC_TUNABLES,
// LD_PRELOAD and MALLOC_CONF), so the benchmarks run
// their agent as the unit does and follow the unit when it changes.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const AGENT_UNIT_ENV_NAMES = [
  'NODE_OPTIONS',
  'MALLOC_ARENA_MAX',
  'GLIBC_TUNABLES',
  'LD_PRELOAD',
  'MALLOC_CONF',
] as const;

/** "NAME=value" for each of AGENT_UNIT_ENV_NAMES the unit file sets, in the file's order. */
export function agentUnitEnv(unitText?: string): string[] {
  const text =
    unitText ??
    readFileSync(fileURLToPath(new URL('../deploy/systemd/crosslink-agent.service', import.meta.url)), 'utf8');
  const names = AGENT_UNIT_ENV_NAMES.join('|');
  return [...text.matchAll(new RegExp(`^Environment=((?:${names})=.*)$`, 'gm'))].map((m) => m[1]!.trim());
}
