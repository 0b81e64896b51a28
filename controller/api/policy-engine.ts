// The narrow seam between the API and the pure policy engine (controller/policy/): parse + validate
// a document, and run the document's own tests. Keeping it to two functions lets the API be tested
// with any engine and keeps the wiring to controller/policy in this one file.
import type { ErrorDetail } from '../../lib/errors.js';
import { evaluate } from '../policy/evaluate.js';
import type { Policy } from '../policy/types.js';
import { parsePolicy } from '../policy/validate.js';
import { diffPolicies } from '../policy/policy-diff.js';

export type ParseResult = { policy: Policy; errors?: undefined } | { policy?: undefined; errors: ErrorDetail[] };

export interface PolicyEngine {
  /** YAML or JSON text -> a validated Policy, or every error with its path and line. `knownAgents`:
   *  enrolled agents, which `via` may name besides the document's own agents. */
  parse(text: string, opts?: { knownAgents?: readonly string[]; nonConsentingRelays?: readonly string[] }): ParseResult;
  /** Runs the policy's `tests`; returns one detail per failing test (empty: all pass). */
  runTests(policy: Policy): ErrorDetail[];
  /** The policy-level changes from `before` (null: none yet) to `after`, one line each. */
  diff(before: Policy | null, after: Policy): string[];
}

export const policyEngine: PolicyEngine = {
  diff: diffPolicies,
  parse: (text, opts) => parsePolicy(text, { knownAgents: opts?.knownAgents, nonConsentingRelays: opts?.nonConsentingRelays }),
  runTests: (policy) => {
    const failures: ErrorDetail[] = [];
    policy.tests.forEach((t, i) => {
      // Without port or proto a test asks "is any traffic allowed"; with a port alone it means tcp.
      const proto = t.proto ?? (t.port !== undefined ? 'tcp' : 'any');
      try {
        const d = evaluate(policy, t.from, t.to, proto, t.port);
        if (d.decision !== t.expect) {
          const label = t.name ? `test "${t.name}"` : `test ${i + 1}`;
          failures.push({ path: `tests[${i}]`, message: `${label} expected ${t.expect} but got ${d.decision}: ${d.reason}` });
        }
      } catch (e) {
        failures.push({ path: `tests[${i}]`, message: (e as Error).message });
      }
    });
    return failures;
  },
};
