// bench:agent's agent process: bench/agent-worker.ts, bundled, run inside a box namespace and driven over IPC.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toBinary } from '@bufbuild/protobuf';
import { AgentConfigSchema, type AgentConfig } from '../proto/gen/crosslink/v1/agent_pb.js';
import { killPid, must } from '../agent/host/linux/netns.fixture.js';
import type { AgentSettings } from '../agent/reconcile/desired.js';
import { pids, workDir } from './agent-netns.js';
import { agentUnitEnv } from './agent-unit-env.js';

export type Msg = { type: string } & Record<string, unknown>;

let bundlePath: string | null = null;
/** The worker as one plain JavaScript file (esbuild, which tsx brings): run through tsx's loader
 *  hooks, the process would carry a second V8 isolate (~50 MB) that no agent has. */
function workerBundle(): string {
  if (bundlePath) return bundlePath;
  const out = join(workDir, 'agent-worker.cjs');
  const esbuild = fileURLToPath(new URL('../node_modules/.bin/esbuild', import.meta.url));
  must([
    esbuild,
    fileURLToPath(new URL('./agent-worker.ts', import.meta.url)),
    '--bundle',
    '--platform=node',
    '--format=cjs',
    '--target=node20',
    '--log-level=error',
    `--outfile=${out}`,
  ]);
  bundlePath = out;
  return out;
}

export class Agent {
  private readonly child: ChildProcess;
  private readonly inbox: Msg[] = [];
  private wake: (() => void) | null = null;

  constructor(readonly netns: string) {
    // `ip netns exec` execs node itself: the PID and the IPC channel are the agent's.
    // `env`: the memory settings of deploy/systemd/crosslink-agent.service (the worker checks they agree).
    this.child = spawn(
      'ip',
      ['netns', 'exec', netns, 'env', ...agentUnitEnv(), process.execPath, '--expose-gc', workerBundle()],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    pids.add(this.child.pid!);
    this.child.on('message', (m: Msg) => {
      this.inbox.push(m);
      this.wake?.();
    });
    this.child.on('exit', (code) => {
      this.inbox.push({ type: 'error', message: `agent process exited (${code})` });
      this.wake?.();
    });
  }

  async call(m: Msg): Promise<Msg> {
    this.child.send(m);
    while (this.inbox.length === 0) await new Promise<void>((r) => (this.wake = r));
    const reply = this.inbox.shift()!;
    if (reply.type === 'error') throw new Error(`agent: ${String(reply.message)}`);
    return reply;
  }

  async init(settings: AgentSettings, opts: { flowLog?: boolean } = {}): Promise<Msg> {
    return this.call({ type: 'init', settings, tempDir: workDir, flowLog: opts.flowLog === true });
  }

  async apply(config: AgentConfig): Promise<
    Msg & {
      ms: number;
      setDesiredMs: number;
      reconcileMs: number;
      steps: string[];
      errors: string[];
      commands: string[];
    }
  > {
    const r = await this.call({
      type: 'apply',
      config: Buffer.from(toBinary(AgentConfigSchema, config)).toString('base64'),
    });
    const errors = r.errors as string[];
    if (errors.length > 0) throw new Error(`apply failed: ${errors.join('; ')}`);
    return r as never;
  }

  stop(): void {
    const pid = this.child.pid!;
    if (this.child.connected) this.child.disconnect();
    killPid(pid);
    pids.delete(pid);
  }
}
