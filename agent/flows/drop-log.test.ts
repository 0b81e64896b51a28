import t from 'tap';
import { NflogParser } from './drop-log.js';

// tcpdump 4.99's lines for packets the firewall sampled (captured in a namespace).
const V4_SYN = [
  '1796507692.777892 version 0, resource ID 25465, family IPv4 (2), length 108: (tos 0x0, ttl 64, id 6578, offset 0, flags [DF], proto TCP (6), length 60)',
  '    10.1.0.2.42792 > 10.2.0.2.22: Flags [S], cksum 0xfe30 (incorrect -> 0xd425), seq 1503301534, win 65495, length 0',
];
const V4_PING = [
  '1796507692.778305 version 0, resource ID 25466, family IPv4 (2), length 132: (tos 0x0, ttl 64, id 7133, offset 0, flags [DF], proto ICMP (1), length 84)',
  '    10.2.0.2 > 10.1.0.2: ICMP echo request, id 324, seq 1, length 64',
];
const V6_SYN =
  '1796507692.778429 version 0, resource ID 25467, family IPv6 (10), length 128: (flowlabel 0x3febd, hlim 64, next-header TCP (6) payload length: 40) fd00:1::2.51804 > fd00:2::2.9998: Flags [S], cksum 0x0030, length 0';

t.test('sampled drops become records: true addresses, direction by NFLOG group, no rule', async (t) => {
  const p = new NflogParser('gp');
  t.equal(p.feed(V4_SYN[0]!), null, 'IPv4: the header line waits for the addresses');
  t.match(p.feed(V4_SYN[1]!), {
    startMs: 1796507692777,
    protocol: 6,
    srcAddress: '10.1.0.2',
    srcPort: 42792,
    dstAddress: '10.2.0.2',
    dstPort: 22,
    packets: 1,
    bytes: 60,
    rule: null,
    verdict: 'dropped',
    direction: 'outbound',
    box: 'gp',
  });
  p.feed(V4_PING[0]!);
  t.match(p.feed(V4_PING[1]!), {
    protocol: 1,
    srcAddress: '10.2.0.2',
    srcPort: 0,
    dstPort: 0,
    direction: 'inbound',
    bytes: 84,
  });
  t.match(p.feed(V6_SYN), {
    protocol: 6,
    srcAddress: 'fd00:1::2',
    srcPort: 51804,
    dstAddress: 'fd00:2::2',
    dstPort: 9998,
    bytes: 80,
    direction: 'local',
  });
});

t.test('other lines and other groups give nothing', async (t) => {
  const p = new NflogParser('gp');
  t.equal(p.feed('listening on nflog:25465,25466,25467, link-type NFLOG'), null);
  t.equal(p.feed(V4_SYN[0]!.replace('resource ID 25465', 'resource ID 7')), null);
  t.equal(p.feed(V4_SYN[1]!), null, 'the addresses of a packet of another group');
  t.equal(p.feed(V4_SYN[1]!), null, 'an address line with no header before it');
});
