import t from 'tap';
import { silentLogger } from '../../lib/logger.js';
import { isRelevantEvent, watchHostEvents } from './events.js';

t.test('which monitor lines matter', async (t) => {
  const yes = [
    '7: crosslink0: <POINTOPOINT,NOARP> mtu 1420 qdisc noop state DOWN group default',
    'Deleted 7: crosslink0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420',
    '172.16.5.0/24 dev crosslink0 proto 147 scope link',
    'Deleted 172.16.5.0/24 dev crosslink0 proto 147 scope link',
    '10.0.0.0/8 dev eth9 proto 147',
  ];
  const no = [
    '2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500',
    'default via 192.0.2.1 dev eth0 proto dhcp',
    '10.0.0.0/8 dev crosslink01 proto kernel',
    '10.0.0.0/8 dev eth0 proto 1470',
  ];
  for (const l of yes) t.ok(isRelevantEvent(l, 'crosslink0'), l);
  for (const l of no) t.notOk(isRelevantEvent(l, 'crosslink0'), l);
});

t.test('a burst of events is one kick; stop ends the monitor', async (t) => {
  let kicks = 0;
  const script = 'for i in 1 2 3; do echo "172.16.5.0/24 dev xl0 proto 147"; done; echo "eth0 noise"; exec sleep 30';
  const w = watchHostEvents({ interfaceName: 'xl0', kick: () => kicks++, log: silentLogger(), debounceMs: 50, argv: ['sh', '-c', script] });
  await new Promise((r) => setTimeout(r, 400));
  t.equal(kicks, 1);
  w.stop();
});
