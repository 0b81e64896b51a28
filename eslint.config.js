// Lint: typescript-eslint's type-checked recommended rules plus the house boundary: the pure parts (the policy
// engine, the reconciler's planner, the wire contract) import nothing that does I/O.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const IO_MODULES = [
  'fs',
  'node:fs',
  'fs/promises',
  'node:fs/promises',
  'child_process',
  'node:child_process',
  'net',
  'node:net',
  'http',
  'node:http',
  'https',
  'node:https',
  'dgram',
  'node:dgram',
  'worker_threads',
  'node:worker_threads',
  'os',
  'node:os',
  'process',
  'node:process',
  'better-sqlite3',
  'pg',
  'kysely',
  'fastify',
  'pino',
  '@connectrpc/connect-node',
];
const pure = {
  // Type-only imports carry no code, so a pure module may name an I/O module's types.
  '@typescript-eslint/no-restricted-imports': [
    'error',
    {
      paths: IO_MODULES.map((name) => ({
        name,
        message: 'Pure code: no I/O here (GUIDE §2). Take it as a dependency instead.',
        allowTypeImports: true,
      })),
      // host/canonical (prefix and address text) and host/firewall-names are pure themselves, and linted as such below.
      patterns: [
        {
          group: [
            '**/store/**',
            '**/host/**',
            '!**/host/canonical.js',
            '!**/host/firewall-names.js',
            '**/api/**',
            '**/lib/logger*',
            '**/lib/clock*',
          ],
          message: 'Pure code: no I/O here (GUIDE §2).',
          allowTypeImports: true,
        },
      ],
    },
  ],
  'no-restricted-globals': [
    'error',
    { name: 'process', message: 'Pure code: no process access.' },
    { name: 'fetch', message: 'Pure code: no I/O.' },
  ],
  'no-restricted-properties': [
    'error',
    { object: 'Date', property: 'now', message: 'Pure code: take the time as an argument.' },
    { object: 'Math', property: 'random', message: 'Pure code: deterministic only.' },
  ],
};

export default tseslint.config(
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  { ignores: ['node_modules/**', 'dist/**', 'proto/gen/**', '.tap/**', 'build/**', '.demo/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['**/*.ts'],
    rules: {
      // tap's t.test() (declared by its @tapjs/test plugin) queues the subtest itself; awaiting it is optional.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: '@tapjs/test', name: ['test'] }] },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
    },
  },
  // tap ends a subtest when the promise its function returns settles: `async` is how a synchronous test says so.
  { files: ['**/*.test.ts'], rules: { '@typescript-eslint/require-await': 'off' } },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: Object.fromEntries(
        ['process', 'console', 'Buffer', 'URL', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'].map(
          (g) => [g, 'readonly'],
        ),
      ),
    },
  },
  {
    files: [
      'controller/policy/**/*.ts',
      'agent/reconcile/plan.ts',
      'agent/reconcile/desired.ts',
      'agent/reconcile/render-memo.ts',
      'agent/reconcile/host-state.ts',
      'agent/failover/decide.ts',
      'agent/failover/groups.ts',
      'lib/prefix.ts',
      'agent/host/canonical.ts',
      'agent/host/firewall-names.ts',
      'agent/liveness/echo.ts',
      'agent/health/rule-counters.ts',
      'agent/flows/zone-table.ts',
      'agent/host/firewall-parts.ts',
      'agent/liveness/advert.ts',
      'agent/liveness/settings.ts',
      'controller/health/evaluate.ts',
      'controller/stats/rule-stats.ts',
      'agent/flows/conntrack-events.ts',
      'agent/trace/trace-table.ts',
      'controller/trace/live-plan.ts',
      'controller/store/changes.ts',
      'controller/ui/web/line-diff.ts',
      'lib/export/record.ts',
      'controller/health/serving.ts',
      'controller/health/types.ts',
      'cli/health-format.ts',
      'controller/diagram/**/*.ts',
      'lib/export/ipfix.ts',
      'lib/export/syslog-format.ts',
      'proto/**/*.ts',
    ],
    ignores: ['**/*.test.ts', '**/*.fixture.ts'],
    rules: pure,
  },
);
