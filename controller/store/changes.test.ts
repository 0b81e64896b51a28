import t from 'tap';
import { parseChangeNotice } from './changes.js';

t.test('change notices: the kinds a replica acts on, anything else ignored', async (t) => {
  t.same(parseChangeNotice('{"kind":"policy","origin":"r1"}'), { kind: 'policy', origin: 'r1' });
  t.same(parseChangeNotice('{"kind":"agents","names":["a","b"],"origin":"r1"}'), {
    kind: 'agents',
    names: ['a', 'b'],
    origin: 'r1',
  });
  t.same(parseChangeNotice('{"kind":"serving","agents":[["a",false]],"origin":"r2"}'), {
    kind: 'serving',
    agents: [['a', false]],
    origin: 'r2',
  });
  t.same(parseChangeNotice('{"kind":"health","origin":"r3"}'), { kind: 'health', origin: 'r3' });
  for (const bad of [
    undefined,
    '',
    'not json',
    'null',
    '{"kind":"policy"}', // no origin
    '{"kind":"agents","names":[1],"origin":"r"}',
    '{"kind":"serving","agents":[["a","yes"]],"origin":"r"}',
    '{"kind":"audit","origin":"r"}', // a newer release's kind
  ])
    t.equal(parseChangeNotice(bad), null, `ignored: ${String(bad)}`);
});
