import t from 'tap';
import { ZoneTable } from './zone-table.js';

t.test('ZoneTable: the most specific prefix names the zone; none gives ""', async (t) => {
  const table = new ZoneTable([
    { zone: 'n3', prefixes: ['10.0.0.0/8', '2001:db8:20::/48'] },
    { zone: 'psn', prefixes: ['10.9.0.0/16', '172.16.5.0/24', '172.16.9.10/32'] },
  ]);
  const cases: Array<[string, string]> = [
    ['10.1.2.3', 'n3'],
    ['10.9.8.7', 'psn'], // inside both: the longer prefix wins
    ['10.255.255.255', 'n3'],
    ['172.16.5.255', 'psn'],
    ['172.16.9.10', 'psn'],
    ['172.16.9.11', ''],
    ['11.0.0.1', ''],
    ['2001:db8:20:ffff::1', 'n3'],
    ['2001:db8:21::1', ''],
    ['not an address', ''],
    ['', ''],
  ];
  for (const [address, zone] of cases) t.equal(table.zoneOf(address), zone, address || '(empty)');
  t.equal(new ZoneTable([]).zoneOf('10.1.2.3'), '', 'no zones');
});
