// SysctlPort: /proc/sys in the agent's own namespace; `sysctl` through `ip netns exec` for another
// namespace (/proc/sys/net shows the namespace of the process that reads it).
import { readFile, writeFile } from 'node:fs/promises';
import { HostCommandError } from '../../../lib/errors.js';
import type { SysctlPort } from '../ports.js';
import type { CommandRunner } from './run.js';

const KEY_RE = /^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$/;

function procPath(key: string): string {
  if (!KEY_RE.test(key)) throw new HostCommandError(['sysctl', key], 1, `invalid sysctl key "${key}"`);
  return `/proc/sys/${key.replace(/\./g, '/')}`;
}

export class LinuxSysctl implements SysctlPort {
  constructor(private readonly opts: { runner: CommandRunner; netns?: string }) {}

  async get(key: string): Promise<string> {
    const path = procPath(key);
    if (this.opts.netns)
      return (await this.opts.runner.run(['sysctl', '-n', key], { netns: this.opts.netns })).stdout.trim();
    try {
      return (await readFile(path, 'utf8')).trim();
    } catch (e) {
      throw new HostCommandError(['sysctl', '-n', key], 1, (e as Error).message, { cause: e });
    }
  }

  async set(key: string, value: string): Promise<void> {
    const path = procPath(key);
    if (this.opts.netns) {
      await this.opts.runner.run(['sysctl', '-qw', `${key}=${value}`], { netns: this.opts.netns });
      return;
    }
    try {
      await writeFile(path, value);
    } catch (e) {
      throw new HostCommandError(['sysctl', '-w', `${key}=${value}`], 1, (e as Error).message, { cause: e });
    }
  }
}
