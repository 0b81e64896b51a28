// formatTrace: what `crosslink trace` prints for each end, including a subnet its boxes serve on
// their own choice (none healthy to the controller) and an older controller's answer without it.
import t from 'tap';
import type { TraceResult } from '../../controller/api/trace.js';
import { formatTrace } from './trace.js';

const base: TraceResult = {
  policyVersion: 3,
  from: { address: '10.30.1.10', subnet: 'gp', zone: 'n3', servedBy: 'gp-box', unserved: null, unconfirmed: null },
  to: {
    address: '10.20.1.10',
    subnet: 'records',
    zone: 'n3',
    servedBy: 'p',
    unserved: null,
    unconfirmed: 'p is unhealthy; s is unhealthy',
  },
  proto: 'tcp',
  port: 443,
  decision: 'allow',
  rule: 'gp-to-records',
  reason: 'allowed',
  path: { kind: 'direct', from: 'gp-box', to: 'p', endpoint: '192.0.2.1:51820', relay: null, standbyRelays: [] },
  outcome: 'passes',
  summary: 'passes',
};

t.test('each end: served, served on its boxes own choice, or by nobody', async (t) => {
  const text = formatTrace(base);
  t.match(text, /\n {2}from 10\.30\.1\.10: subnet gp \(zone n3\), served by gp-box\n/);
  t.match(
    text,
    /\n {2}to {3}10\.20\.1\.10: subnet records \(zone n3\), served by p or another of its boxes \(their own choice; none healthy to the controller: p is unhealthy; s is unhealthy\)\n/,
  );
  const unserved = formatTrace({
    ...base,
    to: { ...base.to, servedBy: null, unserved: 'p is unhealthy', unconfirmed: null },
  });
  t.match(unserved, /served by nobody: p is unhealthy\n/);
  // An older controller leaves `unconfirmed` out.
  const { unconfirmed: _, ...older } = base.to;
  t.match(formatTrace({ ...base, to: older as TraceResult['to'] }), /subnet records \(zone n3\), served by p\n/);
});
