// Raw document -> validated Policy, or every error at once, each with its path and line.
// The sections are checked in validate/: agents (with underlays and zones), subnets, groups, rules, tests.
import type { ErrorDetail } from '../../lib/errors.js';
import { parsePolicyText, type PathSegment, type Position } from './parse.js';
import { NameResolver } from './resolve.js';
import type { Policy } from './types.js';
import { checkAgents, checkUnderlays, checkZones, zoneChecker } from './validate/agents.js';
import { byName, Checker } from './validate/checker.js';
import { checkGroups } from './validate/groups.js';
import { checkPaths, checkProbeVerdicts, checkRules } from './validate/rules.js';
import { checkSubnets } from './validate/subnets.js';
import { checkTests } from './validate/tests.js';

export interface ValidateOptions {
  /** Shortest prefix length a subnet may have (both families). Default 8. */
  minPrefixLength?: number;
  /** Agents the controller knows live; `via` may name these as well as the file's own agents. */
  knownAgents?: Iterable<string>;
  /**
   * Relays the policy may name whose enrolled box has not consented (its agent runs without
   * --relay): they carry nothing, so a flow that needs them has no path.
   */
  nonConsentingRelays?: Iterable<string>;
  /** Now, for `policy check`: a rule whose `not-after` has passed is an error. Absent (the
   *  controller, which keeps an expired rule until a person removes it): not checked. */
  nowMs?: number;
  /** Where a path is in the source text (parsePolicy() supplies it). */
  locate?: (path: readonly PathSegment[], isKey?: boolean) => Position | undefined;
}

export type ValidateResult = { policy: Policy; errors?: undefined } | { policy?: undefined; errors: ErrorDetail[] };

export const DEFAULT_MIN_PREFIX_LENGTH = 8;

const TOP_KEYS = ['version', 'underlays', 'zones', 'agents', 'subnets', 'groups', 'rules', 'tests'];

/** Parse (YAML or JSON) and validate in one go. */
export function parsePolicy(text: string, opts: Omit<ValidateOptions, 'locate'> = {}): ValidateResult {
  const nul = text.indexOf('\u0000');
  if (nul >= 0) {
    const line = text.slice(0, nul).split('\n').length;
    return {
      errors: [
        { path: '', line, message: 'this is not a text file (it holds a NUL byte): a policy is YAML or JSON text' },
      ],
    };
  }
  const parsed = parsePolicyText(text);
  if (parsed.errors.length > 0) return { errors: limitErrors(parsed.errors) };
  return validatePolicy(parsed.value, { ...opts, locate: parsed.locate });
}

export function validatePolicy(raw: unknown, opts: ValidateOptions = {}): ValidateResult {
  const r = validateDocument(raw, opts);
  return r.errors === undefined ? r : { errors: limitErrors(r.errors) };
}

/** At most this many errors are listed; a last one says how many more there were. */
export const MAX_ERRORS = 50;
const MAX_MESSAGE_CHARS = 300;

const clip = (s: string): string =>
  s.length <= MAX_MESSAGE_CHARS
    ? s
    : `${s.slice(0, MAX_MESSAGE_CHARS)}… (${s.length - MAX_MESSAGE_CHARS} more characters)`;

/** "3 errors", or "more than 50 errors" for a list limitErrors() cut short. */
export function describeErrorCount(errors: readonly ErrorDetail[]): string {
  if (errors.length > MAX_ERRORS) return `more than ${MAX_ERRORS} errors`;
  return `${errors.length} error${errors.length === 1 ? '' : 's'}`;
}

/** The first MAX_ERRORS errors, each message and path clipped, and a last line counting the rest:
 *  a damaged file must not answer with megabytes. */
export function limitErrors(errors: ErrorDetail[]): ErrorDetail[] {
  const shown = errors.slice(0, MAX_ERRORS).map(
    (e) =>
      e.message.length > MAX_MESSAGE_CHARS || (e.path ?? '').length > MAX_MESSAGE_CHARS
        ? { ...e, ...(e.path !== undefined ? { path: clip(e.path) } : {}), message: clip(e.message) }
        : { ...e }, // a plain copy: a Checker message may be a getter, computed here for the shown ones only
  );
  if (errors.length > MAX_ERRORS) {
    const more = errors.length - MAX_ERRORS;
    shown.push({
      path: '',
      message: `and ${more} more error${more === 1 ? '' : 's'} (only the first ${MAX_ERRORS} are listed; fix these first)`,
    });
  }
  return shown;
}

/** Every section in document order, each checked against the ones before it; every error at once. */
function validateDocument(raw: unknown, opts: ValidateOptions): ValidateResult {
  const c = new Checker(opts.locate);
  if (raw === undefined || raw === null) {
    c.err([], 'the document is empty; it needs at least "version: 1"');
    return { errors: c.errors };
  }
  const top = c.fields(raw, [], TOP_KEYS, ['version'], 'the policy document');
  if (!top) return { errors: c.errors };
  if (top.version !== undefined && top.version !== 1)
    c.err(['version'], `version must be 1; got ${JSON.stringify(top.version)}`);

  const underlays = checkUnderlays(c, top.underlays);
  const zones = checkZones(c, top.zones);
  const zoneNames = new Set(zones.map((z) => z.name));
  const checkZone = zoneChecker(c, zoneNames);
  const agents = checkAgents(
    c,
    top.agents,
    checkZone,
    underlays.map((u) => u.name),
  );
  const fileAgents = new Map(agents.map((a) => [a.name as string, a]));
  const knownAgents = new Set<string>(fileAgents.keys());
  for (const a of opts.knownAgents ?? []) knownAgents.add(a);
  const isAgentListKnown = top.agents !== undefined || opts.knownAgents !== undefined;
  const minPrefixLength = opts.minPrefixLength ?? DEFAULT_MIN_PREFIX_LENGTH;
  const { subnets, parsedCidrs } = checkSubnets(c, top.subnets, {
    minPrefixLength,
    checkZone,
    zoneNames,
    fileAgents,
    knownAgents,
    isAgentListKnown,
  });
  const subnetNames = new Set(subnets.map((s) => s.name as string));
  const groups = checkGroups(c, top.groups, subnetNames);
  const groupNames = new Set(groups.map((g) => g.name));
  const resolver = new NameResolver({ subnets, groups });
  const zoneOf = new Map(subnets.map((s) => [s.name as string, s.zone]));
  const { rules, probePaths } = checkRules(c, top.rules, {
    subnetNames,
    groupNames,
    resolver,
    zoneOf,
    parsedCidrs,
    nowMs: opts.nowMs,
  });
  const tests = checkTests(c, top.tests, { subnetNames, groupNames, parsedCidrs });
  checkPaths(c, rules, resolver, subnets, fileAgents, opts.nonConsentingRelays);
  if (c.errors.length > 0) return { errors: c.sorted() };

  const policy: Policy = {
    version: 1,
    underlays: underlays.sort(byName),
    zones: zones.sort(byName),
    agents: agents.sort(byName),
    subnets: subnets.sort(byName),
    groups: groups.sort(byName),
    rules,
    tests,
  };
  checkProbeVerdicts(c, policy, probePaths);
  if (c.errors.length > 0) return { errors: c.sorted() };
  return { policy };
}
