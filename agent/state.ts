// The agent's state dir: its WireGuard key pair, its enrollment (credential, controller URL, CA pin)
// and the last config it applied. Every file is 0600 in a 0700 dir, and every write is atomic
// (temp file, fsync, rename, fsync of the dir), so a crash or power cut leaves the old file or the
// new one, never half of one.
import { constants as fsc } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import { CrosslinkError } from '../lib/errors.js';
import { AgentConfigSchema, type AgentConfig } from '../proto/gen/crosslink/v1/agent_pb.js';
import { generateWgPrivateKey, wgPublicKey } from './host/wg-key.js';

export const STATE_FILES = {
  privateKey: 'private.key',
  publicKey: 'public.key',
  enrollment: 'enrollment.json',
  config: 'config.pb',
} as const;

export interface KeyPair {
  /** base64 of the 32-byte X25519 public key (44 chars), as WireGuard writes it. */
  publicKey: string;
  /** Path of the 0600 file holding the base64 private key (for `wg syncconf`). */
  privateKeyFile: string;
  /** true: made by this call. */
  isNew: boolean;
}

export interface Enrollment {
  /** The first controller URL (all that a state file written before `controllerUrls` has). */
  controllerUrl: string;
  /** Every controller URL from the join token, first choice first; absent in older state files. */
  controllerUrls?: string[];
  caFingerprint: string;
  credential: string;
  agentId: string;
  name: string;
  overlayAddress: string;
  protocolVersion: number;
  enrolledAtMs: number;
}

/** The base64 public key of a base64 X25519 private key; a fresh clamped private key. */
export { wgPublicKey as publicKeyOf, generateWgPrivateKey as generatePrivateKey } from './host/wg-key.js';

/** Writes `data` to `path` atomically with `mode` (temp + fsync + rename + fsync of the dir). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode); // the umask may have narrowed or (with a stale temp file) not applied
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const dir = await open(join(path, '..'), fsc.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export class StateDir {
  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  path(file: keyof typeof STATE_FILES): string {
    return join(this.dir, STATE_FILES[file]);
  }

  /** Creates the dir (0700) if needed and narrows a wider mode. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const st = await stat(this.dir);
    if ((st.mode & 0o077) !== 0) {
      await chmod(this.dir, 0o700);
      this.log.warn(
        { dir: this.dir, mode: (st.mode & 0o777).toString(8) },
        'state dir was readable by others; narrowed to 0700',
      );
    }
  }

  /** Loads the key pair, or makes one on first run. The private key never leaves its file. */
  async keys(): Promise<KeyPair> {
    const privateKeyFile = this.path('privateKey');
    const existing = await readIfExists(privateKeyFile);
    if (existing) {
      const st = await stat(privateKeyFile);
      if ((st.mode & 0o077) !== 0) {
        await chmod(privateKeyFile, 0o600);
        this.log.warn({ file: privateKeyFile }, 'private key file was readable by others; narrowed to 0600');
      }
      const publicKey = wgPublicKey(existing.toString('utf8'));
      return { publicKey, privateKeyFile, isNew: false };
    }
    const priv = generateWgPrivateKey();
    const publicKey = wgPublicKey(priv);
    await writeFileAtomic(privateKeyFile, `${priv}\n`);
    await writeFileAtomic(this.path('publicKey'), `${publicKey}\n`);
    this.log.info({ publicKey }, 'made a new WireGuard key pair');
    return { publicKey, privateKeyFile, isNew: true };
  }

  async loadEnrollment(): Promise<Enrollment | null> {
    const raw = await readIfExists(this.path('enrollment'));
    if (!raw) return null;
    try {
      const e = JSON.parse(raw.toString('utf8')) as Enrollment;
      if (
        typeof e.credential !== 'string' ||
        typeof e.controllerUrl !== 'string' ||
        typeof e.caFingerprint !== 'string'
      )
        throw new Error('fields missing');
      if (
        e.controllerUrls !== undefined &&
        !(Array.isArray(e.controllerUrls) && e.controllerUrls.every((u) => typeof u === 'string'))
      )
        throw new Error('controllerUrls is not a list of URLs');
      return e;
    } catch (err) {
      throw new CrosslinkError(
        'config_invalid',
        `${this.path('enrollment')} is damaged; remove it and enroll again with a new join token`,
        [],
        { cause: err },
      );
    }
  }

  async saveEnrollment(e: Enrollment): Promise<void> {
    await writeFileAtomic(this.path('enrollment'), `${JSON.stringify(e, null, 2)}\n`);
  }

  /** The last applied config, or null (none yet, or unreadable: then the controller sends it). */
  async loadConfig(): Promise<AgentConfig | null> {
    const raw = await readIfExists(this.path('config'));
    if (!raw) return null;
    try {
      return fromBinary(AgentConfigSchema, raw);
    } catch (err) {
      this.log.warn({ err, file: this.path('config') }, 'saved config does not parse; starting without it');
      return null;
    }
  }

  async saveConfig(config: AgentConfig): Promise<void> {
    await writeFileAtomic(this.path('config'), toBinary(AgentConfigSchema, config));
  }
}

/** The URLs to dial for an enrollment, whichever version of the agent wrote it. */
export function enrollmentUrls(e: Pick<Enrollment, 'controllerUrl' | 'controllerUrls'>): string[] {
  return e.controllerUrls?.length ? e.controllerUrls : [e.controllerUrl];
}
