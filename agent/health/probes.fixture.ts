// Fakes shared by the probe tests: a ping reply, a command runner answering from a table, a path probe.
import { create } from '@bufbuild/protobuf';
import { ProbeSchema, type Probe } from '../../proto/gen/crosslink/v1/agent_pb.js';
import type { ProbeCommandRunner } from './ports.js';

/** What iputils ping prints for one answered echo (RTT 0.734 ms). */
export const PING_OK =
  'PING 100.64.0.9 (100.64.0.9) 56(84) bytes of data.\n64 bytes from 100.64.0.9: icmp_seq=1 ttl=64 time=0.734 ms\n\n--- 100.64.0.9 ping statistics ---\n1 packets transmitted, 1 received, 0% packet loss, time 0ms\n';

/** A runner that answers from a table keyed by the target (last argv element) and records argv. */
export function fakeRunner(
  answers: Record<
    string,
    { exitCode: number; stdout?: string; stderr?: string } | Array<{ exitCode: number; stdout?: string }>
  >,
) {
  const calls: string[][] = [];
  const runner: ProbeCommandRunner = {
    run: (argv) => {
      calls.push([...argv]);
      const a = answers[argv.at(-1) ?? ''];
      const one = Array.isArray(a) ? a.shift() : a;
      return Promise.resolve({
        exitCode: one?.exitCode ?? 2,
        stdout: one?.stdout ?? '',
        stderr: (one as { stderr?: string })?.stderr ?? 'unknown host',
      });
    },
  };
  return { runner, calls };
}

/** Path probe care/0: tcp 10.1.0.0/24 -> 10.20.1.5:443, with `o` over it. */
export const probe = (o: Partial<Omit<Probe, '$typeName' | '$unknown'>>): Probe =>
  create(ProbeSchema, {
    name: 'care/0',
    target: '10.20.1.5',
    protocol: 'tcp',
    port: 443,
    sourcePrefix: '10.1.0.0/24',
    ...o,
  });
