import t from 'tap';
import {
  assignRuleMarks,
  parseCounterName,
  RULE_MARK_BASE,
  RULE_MARK_MASK,
  zoneDropCounter,
} from './firewall-names.js';

const none = { outbound: [], inbound: [], local: [] };

t.test('marks: one per (direction, rule), in the Crosslink range, never slot 0', async (t) => {
  const marks = assignRuleMarks({ ...none, outbound: ['web', 'hl7', 'web'], inbound: ['web'] });
  t.equal(marks.length, 3, 'a rule named twice in one direction has one mark');
  for (const m of marks) {
    t.equal((m.mark & RULE_MARK_MASK) >>> 0, RULE_MARK_BASE, `${m.direction}/${m.rule} in the range`);
    t.not(m.mark, RULE_MARK_BASE);
  }
  t.equal(new Set(marks.map((m) => m.mark)).size, 3, 'distinct');
});

t.test('marks are stable: other rules coming and going do not move a rule', async (t) => {
  const before = assignRuleMarks({ ...none, outbound: ['care-records', 'hl7-feed'] });
  const after = assignRuleMarks({ ...none, outbound: ['aaa-first', 'hl7-feed', 'care-records', 'zzz'], local: ['x'] });
  for (const m of before)
    t.equal(after.find((a) => a.rule === m.rule && a.direction === 'outbound')?.mark, m.mark, m.rule);
  t.same(
    assignRuleMarks({ ...none, outbound: ['b', 'a'] }),
    assignRuleMarks({ ...none, outbound: ['a', 'b'] }),
    'order does not matter',
  );
});

t.test('two rules that want one slot both get a mark (the later one the next free slot)', async (t) => {
  // 2,000 names over 65,535 slots: about 30 pairs want one slot (the birthday bound).
  const names = Array.from({ length: 2000 }, (_, i) => `rule-${i}`);
  const marks = assignRuleMarks({ ...none, outbound: names });
  t.equal(new Set(marks.map((m) => m.mark)).size, 2000, '2,000 rules, 2,000 distinct marks');
  t.throws(() => assignRuleMarks({ ...none, outbound: Array.from({ length: 65_536 }, (_, i) => `r${i}`) }), RangeError);
});

t.test('counter names read back', async (t) => {
  t.same(parseCounterName('new/outbound/care-records'), {
    kind: 'new',
    direction: 'outbound',
    rule: 'care-records',
  });
  t.same(parseCounterName('flows/local/x'), { kind: 'flows', direction: 'local', rule: 'x' });
  t.same(parseCounterName('dropped_inbound'), { kind: 'dropped', direction: 'inbound' });
  t.equal(parseCounterName('flows/sideways/x'), null);
  t.equal(parseCounterName('something_else'), null);
  t.same(parseCounterName(zoneDropCounter('inbound', 'psn', 'n3')), {
    kind: 'zone-drop',
    direction: 'inbound',
    sourceZone: 'psn',
    destinationZone: 'n3',
  });
  t.equal(parseCounterName('drop/inbound/psn'), null, 'one zone only');
  t.equal(parseCounterName('drop/inbound/PSN/n3'), null, 'not a zone name');
  t.equal(parseCounterName('drop/sideways/psn/n3'), null, 'not a direction');
});
