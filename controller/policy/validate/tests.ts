// The tests section: flows between an address or subnet and another, and the decision expected.
import { familyMismatch } from '../evaluate.js';
import { didYouMean } from '../names.js';
import type { PathSegment } from '../parse.js';
import { parseAddress, type ParsedPrefix } from '../prefixes.js';
import type { PolicyTest } from '../types.js';
import { typeName, type Checker, type Raw } from './checker.js';

const TEST_KEYS = ['name', 'from', 'to', 'port', 'proto', 'expect'];

export interface TestContext {
  subnetNames: ReadonlySet<string>;
  groupNames: ReadonlySet<string>;
  parsedCidrs: ReadonlyMap<string, ParsedPrefix[]>;
}

export function checkTests(c: Checker, raw: unknown, ctx: TestContext): PolicyTest[] {
  const tests: PolicyTest[] = [];
  c.list(raw, ['tests'], 'tests').forEach((t, ti) => {
    const p: PathSegment[] = ['tests', ti];
    const f = c.fields(t, p, TEST_KEYS, ['from', 'to', 'expect'], `test ${ti + 1}`);
    if (!f) return;
    const [from, to, ...rest] = testEnds(c, f, p, ctx);
    const flow = c.flow(f, p, false);
    if (!flow || from === undefined || to === undefined || rest.length > 0) return;
    const mixed = familyMismatch(from, to, (n) => {
      const cidrs = ctx.parsedCidrs.get(n);
      return cidrs === undefined ? undefined : new Set(cidrs.map((x) => x.family));
    });
    if (mixed !== null) {
      c.err([...p, 'to'], mixed);
      return;
    }
    const test: PolicyTest = { from, to, expect: flow.expect };
    const name = c.optString(f, 'name', p);
    if (name !== undefined) test.name = name;
    if (flow.proto !== 'any') test.proto = flow.proto;
    if (flow.port !== undefined) test.port = flow.port;
    tests.push(test);
  });
  return tests;
}

/** The test's `from` and `to` that are valid (an address, canonical, or a subnet name). */
function testEnds(c: Checker, f: Raw, p: PathSegment[], ctx: TestContext): string[] {
  const ends: string[] = [];
  for (const key of ['from', 'to'] as const) {
    const v = f[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') {
      c.err([...p, key], `${key} must be an IP address or a subnet name; got ${typeName(v)}`);
      continue;
    }
    const addr = parseAddress(v);
    if (addr) ends.push(addr.text);
    else if (ctx.subnetNames.has(v)) ends.push(v);
    else {
      const hint = () =>
        ctx.groupNames.has(v) ? ' (a group: tests take an address or one subnet)' : didYouMean(v, ctx.subnetNames);
      c.err([...p, key], () => `"${v}" is neither an IP address nor a subnet name${hint()}`);
    }
  }
  return ends;
}
