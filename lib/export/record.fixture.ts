// One flow record for the exporters' tests: a GP's HTTPS flow to the council, allowed outbound.
import type { FlowRecord } from './record.js';

export function sampleFlow(over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    startMs: 1764968400000,
    endMs: 1764968460500,
    protocol: 6,
    srcAddress: '10.1.2.3',
    srcPort: 51514,
    dstAddress: '10.9.8.7',
    dstPort: 443,
    packets: 10,
    bytes: 1200,
    replyPackets: 8,
    replyBytes: 5400,
    rule: 'gp-to-council',
    direction: 'outbound',
    verdict: 'allowed',
    srcZone: 'n3',
    dstZone: 'psn',
    box: 'leeds-gw',
    ...over,
  };
}
