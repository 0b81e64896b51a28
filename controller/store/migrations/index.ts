// The ordered migration set, shared by both dialects. Imported statically (not read from the
// directory) so the compiled and the tsx-run controller see exactly the same list.
import type { Migration, MigrationProvider } from 'kysely';
import * as m001 from './001_initial.js';
import * as m002 from './002_underlays.js';
import * as m003 from './003_health_state.js';
import * as m004 from './004_policy_validated.js';
import * as m005 from './005_agent_streams.js';

const MIGRATIONS: Record<string, Migration> = {
  '001_initial': m001,
  '002_underlays': m002,
  '003_health_state': m003,
  '004_policy_validated': m004,
  '005_agent_streams': m005,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(MIGRATIONS),
};
