// Report encoding benchmark: what one periodic report of N peers and N rule counters costs the agent
// to encode, protobuf-es's reflective toBinary against agent/control/report-wire.ts (the lists
// encoded by hand, each entry's bytes kept while it is unchanged), as the agent sends every 10 s.
//
//   npm run bench:report [-- --peers 1000 --reports 50 --changed 0.05]
//
// Each report changes `--changed` of the peers' byte counters (idle boxes: few change). Prints the
// median time per report and the heap it allocates (heapUsed growth with a young generation big
// enough that no GC runs during the timed reports; --expose-gc collects before). No root needed.
import { create, toBinary } from '@bufbuild/protobuf';
import { performance } from 'node:perf_hooks';
import {
  PeerStatusSchema,
  ReportRequestSchema,
  RuleCounterSchema,
  type PeerStatus,
} from '../proto/gen/crosslink/v1/agent_pb.js';
import { ReportWire } from '../agent/control/report-wire.js';
import { numberArg } from './args.js';

const PEERS = numberArg('peers', 1000);
const REPORTS = numberArg('reports', 50);
const CHANGED = numberArg('changed', 0.05);

function peersAt(report: number): PeerStatus[] {
  return Array.from({ length: PEERS }, (_, i) =>
    create(PeerStatusSchema, {
      name: `agent-${String(i).padStart(4, '0')}`,
      publicKey: `${String(i).padStart(43, 'k')}=`,
      endpoint: `192.0.2.${i % 250}:51820`,
      latestHandshakeUnix: 1_733_500_000n,
      rxBytes: BigInt(i * 1234 + (i < PEERS * CHANGED ? report * 148 : 0)),
      txBytes: BigInt(i * 4321 + (i < PEERS * CHANGED ? report * 92 : 0)),
      isProbed: true,
      isReachable: i % 3 !== 0,
      rttMs: i % 3 !== 0 ? 0.4 : 0,
      lossRatio: i % 3 !== 0 ? 0 : 1,
    }),
  );
}
const counters = Array.from({ length: PEERS }, (_, i) =>
  create(RuleCounterSchema, { rule: `r-${i}`, direction: 'outbound', packets: BigInt(i), bytes: BigInt(i * 60) }),
);

const wire = new ReportWire();
const modes: Record<string, (peers: PeerStatus[]) => Uint8Array> = {
  'protobuf-es toBinary': (peers) =>
    toBinary(
      ReportRequestSchema,
      create(ReportRequestSchema, { agentVersion: '0.1.0', peers, ruleCounters: counters }),
    ),
  'report-wire (kept entries)': (peers) =>
    toBinary(ReportRequestSchema, wire.request({ agentVersion: '0.1.0' }, peers, counters)),
};

const gc = (globalThis as { gc?: () => void }).gc;
console.log(
  `report encoding, ${new Date().toISOString()}: ${PEERS} peers + ${PEERS} rule counters, ${REPORTS} reports, ${CHANGED * 100} % of peers changed per report`,
);
const inputs = Array.from({ length: REPORTS }, (_, r) => peersAt(r + 1));
for (const [name, encode] of Object.entries(modes)) {
  for (let r = 0; r < 10; r++) encode(peersAt(0)); // warm up (and fill the wire's entries)
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const times: number[] = [];
  let bytes = 0;
  for (const peers of inputs) {
    const t0 = performance.now();
    bytes = encode(peers).length;
    times.push(performance.now() - t0);
  }
  const perReportKb = (process.memoryUsage().heapUsed - before) / REPORTS / 1024;
  times.sort((a, b) => a - b);
  console.log(
    `  ${name.padEnd(28)} median ${times[Math.floor(times.length / 2)]!.toFixed(2)} ms, p95 ${times[Math.floor(times.length * 0.95)]!.toFixed(2)} ms per report; ~${perReportKb.toFixed(0)} KB of heap per report; ${bytes} bytes`,
  );
}
