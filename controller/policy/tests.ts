// Runs the `tests` of a policy: each one is a flow and the decision it must get.
import type { ErrorDetail } from '../../lib/errors.js';
import { evaluate, PolicyEvaluator, type EvalProtocol } from './evaluate.js';
import type { Policy, PolicyTest } from './types.js';

export interface PolicyTestResult {
  /** Position in the policy's `tests` list. */
  index: number;
  test: PolicyTest;
  /** One line naming the flow, e.g. 'tests[2] "social care reaches the EPR": 10.60.1.10 -> 10.20.1.10 tcp/443 expect allow'. */
  label: string;
  isPassed: boolean;
  actual: 'allow' | 'deny';
  rule?: string;
  reason: string;
}

export interface PolicyTestReport {
  results: PolicyTestResult[];
  passed: number;
  failed: number;
}

export function testProtocol(t: PolicyTest): EvalProtocol {
  return t.proto ?? (t.port !== undefined ? 'tcp' : 'any');
}

export function describeFlow(proto: EvalProtocol, port?: number): string {
  if (proto === 'any') return 'any traffic';
  if (proto === 'icmp' || port === undefined) return proto;
  return `${proto}/${port}`;
}

export function runPolicyTests(policy: Policy): PolicyTestReport {
  if (policy.tests.length === 0) return { results: [], passed: 0, failed: 0 }; // the evaluator's index is not free
  const ev = new PolicyEvaluator(policy);
  const results = policy.tests.map((test, index): PolicyTestResult => {
    const proto = testProtocol(test);
    const label = `tests[${index}]${test.name ? ` "${test.name}"` : ''}: ${test.from} -> ${test.to} ${describeFlow(proto, test.port)} expect ${test.expect}`;
    const d = ev.evaluate(test.from, test.to, proto, test.port);
    const r: PolicyTestResult = {
      index,
      test,
      label,
      isPassed: d.decision === test.expect,
      actual: d.decision,
      reason: d.reason,
    };
    if (d.rule !== undefined) r.rule = d.rule;
    return r;
  });
  const passed = results.filter((r) => r.isPassed).length;
  return { results, passed, failed: results.length - passed };
}

/** One detail per failing test, for the API's policy_tests_failed (empty: all pass). */
export function policyTestFailures(policy: Policy): ErrorDetail[] {
  const failures: ErrorDetail[] = [];
  policy.tests.forEach((t, i) => {
    try {
      const d = evaluate(policy, t.from, t.to, testProtocol(t), t.port);
      if (d.decision !== t.expect) {
        const label = t.name ? `test "${t.name}"` : `test ${i + 1}`;
        failures.push({
          path: `tests[${i}]`,
          message: `${label} expected ${t.expect} but got ${d.decision}: ${d.reason}`,
        });
      }
    } catch (e) {
      failures.push({ path: `tests[${i}]`, message: (e as Error).message });
    }
  });
  return failures;
}
