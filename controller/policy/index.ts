// The policy engine's public surface. Pure: parse, validate, compile, evaluate, diff, test.
export type * from './types.js';
export { parsePolicyText, formatPath, type ParsedText, type PathSegment, type Position } from './parse.js';
export {
  parsePolicy,
  validatePolicy,
  DEFAULT_MIN_PREFIX_LENGTH,
  MAX_ERRORS,
  describeErrorCount,
  type ValidateOptions,
  type ValidateResult,
} from './validate.js';
export {
  compilePolicy,
  PolicyCompiler,
  contentHash,
  type CompileOptions,
  type CompileResult,
  type PairRoute,
  type PolicyChange,
  type UnconfirmedSubnet,
  type UnservedSubnet,
} from './compile.js';
export { isAwaitingEnrolment, isUnservedBecauseOf } from './unserved.js';
export {
  choosePath,
  describePairPath,
  describePathView,
  pairPathJson,
  RELAY_PORT_BASE,
  type PairPath,
} from './paths.js';
export { evaluate, PolicyEvaluator, type Decision, type EvalProtocol } from './evaluate.js';
export { diffConfigs, diffConfig, formatConfigDiffs, type AgentConfigDiff } from './diff.js';
export {
  runPolicyTests,
  policyTestFailures,
  describeFlow,
  type PolicyTestReport,
  type PolicyTestResult,
} from './tests.js';
export {
  checkPolicy,
  DEFAULT_EXPIRY_WARN_DAYS,
  syntheticInventory,
  type CheckOptions,
  type CheckSummary,
  type RuleExpiry,
} from './check.js';
export { formatTime, parseRfc3339 } from './validate/window.js';
export { formatPortSpec, parsePortSpec } from './ports.js';
