// Rule windows in the rendered firewall: rounding, the safer side of a skewed clock, and overlaps —
// judged by evaluating the rendered ruleset itself (a small evaluator of its IPv4 tcp lookups).
import t from 'tap';
import fc from 'fast-check';
import { create } from '@bufbuild/protobuf';
import { FlowRuleSchema, type FlowRule } from '../../proto/gen/crosslink/v1/agent_pb.js';
import { renderFirewall } from './firewall-render.js';
import { firewall, flow } from './firewall.fixture.js';
import { safeWindow, timeGroups } from './firewall-time.js';
import { assignRuleMarks } from './firewall-names.js';
import { matchGolden } from './golden.fixture.js';

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

function timed(r: FlowRule, notBeforeMs = 0, notAfterMs = 0): FlowRule {
  return create(FlowRuleSchema, { ...r, notBeforeUnixMs: BigInt(notBeforeMs), notAfterUnixMs: BigInt(notAfterMs) });
}

t.test('safeWindow: start rounded up, end rounded down, the safer clock of two', async (t) => {
  t.equal(safeWindow(flow('a', [], [], 'any')), undefined, 'no window');
  t.same(safeWindow(timed(flow('a', [], [], 'any'), T0 + 1, T0 + 9_999)), {
    fromS: T0 / 1000 + 1,
    untilS: T0 / 1000 + 9,
  });
  // Box 60 s ahead of the controller: it opens only once both clocks have passed T (its own reads
  // T + 60 s then), and closes once either has passed the end (its own first).
  t.same(safeWindow(timed(flow('a', [], [], 'any'), T0, T0 + 3_600_000), 60_000), {
    fromS: T0 / 1000 + 60,
    untilS: T0 / 1000 + 3600,
  });
  // Box 60 s behind: it closes when its own clock reads T - 60 s (the controller's reads T).
  t.same(safeWindow(timed(flow('a', [], [], 'any'), T0, T0 + 3_600_000), -60_000), {
    fromS: T0 / 1000,
    untilS: T0 / 1000 + 3540,
  });
  t.same(safeWindow(timed(flow('a', [], [], 'any'), 0, T0), 0), { untilS: T0 / 1000 }, 'end only');
});

t.test('timeGroups: rules without a window first, then by end (latest first), then start', async (t) => {
  const rules = [
    timed(flow('soon', [], [], 'any'), 0, T0 + 1000),
    flow('always', [], [], 'any'),
    timed(flow('later', [], [], 'any'), 0, T0 + 5000),
    timed(flow('starts', [], [], 'any'), T0, 0),
    timed(flow('soon-too', [], [], 'any'), 0, T0 + 1000),
  ];
  const g = timeGroups(rules);
  t.same(
    g.map((x) => [x.tag, x.indices]),
    [
      ['', [1]],
      ['_t1', [3]],
      ['_t2', [2]],
      ['_t3', [0, 4]],
    ],
  );
  t.equal(g[3]!.guard, `meta time < ${(T0 + 1000) / 1000} `);
  t.equal(g[1]!.guard, `meta time >= ${T0 / 1000} `);
  t.same(
    timeGroups([flow('a', [], [], 'any')]).map((x) => x.tag),
    [''],
    'no windows: one group',
  );
});

const FW_WINDOWS = firewall({
  outbound: [
    flow('always-web', ['10.1.0.0/16'], ['10.2.0.0/24'], 'tcp', [443]),
    timed(flow('contractor', ['10.1.0.0/24'], ['10.2.0.0/24'], 'tcp', [[400, 500]]), T0, T0 + 86_400_000),
    timed(flow('pilot-ping', ['10.1.0.0/24'], ['10.2.0.0/24'], 'icmp'), 0, T0 + 3_600_000),
  ],
  inbound: [timed(flow('winter-pathway', ['10.9.0.0/16'], ['10.1.0.0/24'], 'tcp', [8443]), T0, 0)],
  localPrefixes: ['10.1.0.0/16'],
});

t.test('golden: a firewall with windows (check with nft -c -f in a netns)', async (t) => {
  matchGolden(t, 'test/golden/nft/windows.nft', renderFirewall(FW_WINDOWS, { wgInterface: 'crosslink0' }));
  const text = renderFirewall(FW_WINDOWS, { wgInterface: 'crosslink0' });
  const mark = assignRuleMarks({
    outbound: ['always-web', 'contractor', 'pilot-ping'],
    inbound: ['winter-pathway'],
    local: [],
  });
  const m = (rule: string) =>
    `0x${mark
      .find((x) => x.rule === rule)!
      .mark.toString(16)
      .padStart(8, '0')}`;
  // Established flows of a windowed rule die at its end (and before its start).
  t.match(text, `ct mark ${m('contractor')} meta time >= ${T0 / 1000 + 86_400} counter name "dropped_outbound" drop`);
  t.match(text, `ct mark ${m('contractor')} meta time < ${T0 / 1000} counter name "dropped_outbound" drop`);
  t.match(text, `ct mark ${m('winter-pathway')} meta time < ${T0 / 1000} counter name "dropped_inbound" drop`);
  t.notMatch(text, `ct mark ${m('always-web')} meta time`, 'a rule without a window is never cut');
  // ... and those drops come before the established accept.
  t.ok(text.indexOf('meta time >=') < text.indexOf('ct state established,related accept'));
});

// ---- a small evaluator of the rendered to_overlay chain, IPv4 tcp only ----

const ipNum = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
function inPrefix(addr: number, prefix: string): boolean {
  const [net, len] = prefix.includes('/') ? prefix.split('/') : [prefix, '32'];
  const size = 2 ** (32 - Number(len));
  const start = ipNum(net!);
  return addr >= start && addr < start + size;
}

/** The mark the to_overlay chain gives a new tcp flow at `nowS`, or null (dropped). */
function evaluate(text: string, src: string, dst: string, port: number, nowS: number): number | null {
  const maps = new Map<string, string[]>();
  for (const m of text.matchAll(/\tmap (\w+) \{\n[^}]*?elements = \{\n([^}]*)\}/g))
    maps.set(
      m[1]!,
      m[2]!
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== ''),
    );
  const chain = /chain to_overlay \{\n([^}]*)\}/.exec(text)![1]!.split('\n');
  for (const line of chain) {
    const lookup =
      /^\t\t(.*)ct mark set ip saddr \. ip daddr \. meta l4proto \. th dport map @(\w+) goto admitted$/.exec(line);
    if (!lookup) continue;
    const guard = lookup[1]!;
    const from = /meta time >= (\d+)/.exec(guard);
    const until = /meta time < (\d+)/.exec(guard);
    if ((from && nowS < Number(from[1])) || (until && nowS >= Number(until[1]))) continue;
    for (const el of maps.get(lookup[2]!) ?? []) {
      const [tuple, mark] = el.split(' : ');
      const [s, d, , ports] = tuple!.split(' . ');
      const [lo, hi] = ports!.includes('-') ? ports!.split('-').map(Number) : [Number(ports), Number(ports)];
      if (inPrefix(ipNum(src), s!) && inPrefix(ipNum(dst), d!) && port >= lo! && port <= hi!) return Number(mark);
    }
  }
  return null;
}

/** Whether an established flow with `mark` is dropped at `nowS` (the forward chain's expiry drops). */
function isCut(text: string, mark: number, nowS: number): boolean {
  const hex = `0x${mark.toString(16).padStart(8, '0')}`;
  for (const m of text.matchAll(/ct mark (0x[0-9a-f]+) meta time (<|>=) (\d+) counter/g)) {
    if (m[1] !== hex) continue;
    if (m[2] === '<' ? nowS < Number(m[3]) : nowS >= Number(m[3])) return true;
  }
  return false;
}

t.test('overlaps: a flow lives exactly while some rule allows it, and is never cut while one does', async (t) => {
  const base = T0 / 1000;
  const srcs = ['10.1.0.0/16', '10.1.0.0/24', '10.1.0.10/32'];
  const dsts = ['10.2.0.0/16', '10.2.0.0/24', '10.2.0.20/32'];
  const ruleArb = fc.record({
    src: fc.constantFrom(...srcs),
    dst: fc.constantFrom(...dsts),
    lo: fc.integer({ min: 1, max: 20 }),
    span: fc.integer({ min: 0, max: 10 }),
    from: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
    until: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
  });
  fc.assert(
    fc.property(
      fc.array(ruleArb, { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 0, max: 12 }),
      (specs, port, nowOff) => {
        const rules = specs.map((s, i) =>
          timed(
            flow(`r${i}`, [s.src], [s.dst], 'tcp', [[s.lo, s.lo + s.span]]),
            s.from === undefined ? 0 : (base + s.from) * 1000,
            s.until === undefined ? 0 : (base + s.until) * 1000,
          ),
        );
        const text = renderFirewall(firewall({ outbound: rules }), { wgInterface: 'crosslink0' });
        const marks = new Map(
          assignRuleMarks({ outbound: rules.map((r) => r.rule), inbound: [], local: [] }).map((m) => [m.mark, m.rule]),
        );
        const [src, dst] = ['10.1.0.10', '10.2.0.20'];
        const nowS = base + nowOff;
        const isOpen = (s: (typeof specs)[number], at: number) =>
          port >= s.lo &&
          port <= s.lo + s.span &&
          (s.from === undefined || at >= base + s.from) &&
          (s.until === undefined || at < base + s.until);
        const allowing = specs.filter((s) => isOpen(s, nowS));
        const mark = evaluate(text, src, dst, port, nowS);
        if (allowing.length === 0) return mark === null;
        if (mark === null) return false;
        const chosen = specs[Number(marks.get(mark)!.slice(1))]!;
        if (!isOpen(chosen, nowS)) return false;
        // The flow's rule lasts as long as any rule that allows it now: it is never cut while one still does.
        const end = (s: (typeof specs)[number]) => (s.until === undefined ? Infinity : base + s.until);
        if (end(chosen) !== Math.max(...allowing.map(end))) return false;
        // And it is cut from that end on (and not before).
        return end(chosen) === Infinity
          ? !isCut(text, mark, nowS + 100)
          : isCut(text, mark, end(chosen)) && !isCut(text, mark, end(chosen) - 1);
      },
    ),
    { numRuns: 300 },
  );
  t.pass('held for 300 random rule sets');
});
