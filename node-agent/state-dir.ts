/**
 * The agent's state directory: its private key (created on first start, mode 0600) and the
 * last membership it got from the coordinator (vip, prefix, peers), so a restart keeps
 * working while the coordinator is unreachable. The directory itself is 0700.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatePrivateKey, keyFromBase64, keyToBase64 } from '../protocol';
import type { Peer as PeerEntry } from '../coordinator';

export const DEFAULT_STATE_DIR = '/var/lib/isthmus';
const KEY_FILE = 'private.key';
const MEMBERSHIP_FILE = 'membership.json';
/** The signed membership record from the last join (coordinator/membership-record.ts): not secret. */
export const RECORD_FILE = 'membership.record';
/** The coordinator signing key pinned at the first join (docs/SECURITY.md); survives leave. */
export const SIGNING_KEY_FILE = 'coordinator-signing.pub';

export interface Membership {
  vip: string;
  cidr: string;
  version: number;
  peers: PeerEntry[];
}

export class StateDirError extends Error {
  override readonly name = 'StateDirError';
  readonly code = 'ERR_STATE_DIR';
}

function writePrivate(path: string, data: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The peer map is written at most this often while it changes (and at stop). */
export const MEMBERSHIP_SAVE_INTERVAL_MS = 5_000;

/**
 * Debounced `saveMembership`: the newest membership handed to `save` is written at most once
 * per `intervalMs` (the first at once, on the next turn), and by `flush()` (the agent's
 * shutdown). Each write is the same atomic rename as before: a crash leaves the previous map
 * or the new one, at most `intervalMs` old, and a restart without the coordinator starts from
 * it. At 100k peers a write is ~20 MB of JSON: per change it froze the agent; now it is per interval.
 */
export class MembershipWriter {
  /** What waits: a membership, or how to build it when written (a peer map of 100k entries is
   *  copied once per write, not once per change). */
  private pending: Membership | (() => Membership) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastWriteMs = -Infinity;
  /** Files written so far (tests). */
  writes = 0;

  constructor(
    private readonly state: StateDir,
    private readonly onError: (err: Error) => void,
    readonly intervalMs = MEMBERSHIP_SAVE_INTERVAL_MS,
  ) {}

  /** Write `m` soon (replacing whatever waits). */
  save(m: Membership | (() => Membership)): void {
    this.pending = m;
    if (this.timer) return;
    const wait = Math.max(0, this.lastWriteMs + this.intervalMs - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
    this.timer.unref();
  }

  /** True while a membership waits to be written. */
  get dirty(): boolean {
    return this.pending !== undefined;
  }

  /** Forget what waits (the member left: nothing may bring the file back). */
  discard(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }

  /** Write what waits now (shutdown); errors go to onError. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const m = this.pending;
    if (!m) return;
    this.pending = undefined;
    this.lastWriteMs = Date.now();
    try {
      this.state.saveMembership(typeof m === 'function' ? m() : m);
      this.writes++;
    } catch (err) {
      this.onError(err as Error);
    }
  }
}

export class StateDir {
  constructor(readonly dir: string) {}

  private ensure(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
  }

  /** The member's private key; made on first use. Refuses a key file others can read. */
  privateKey(): Buffer {
    const path = join(this.dir, KEY_FILE);
    if (existsSync(path)) {
      const mode = statSync(path).mode & 0o777;
      if (mode & 0o077) throw new StateDirError(`${path} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
      try {
        return keyFromBase64(readFileSync(path, 'utf8'));
      } catch (err) {
        throw new StateDirError(`${path}: ${(err as Error).message}`);
      }
    }
    this.ensure();
    const key = generatePrivateKey();
    writePrivate(path, keyToBase64(key) + '\n');
    return key;
  }

  hasKey(): boolean {
    return existsSync(join(this.dir, KEY_FILE));
  }

  loadMembership(): Membership | undefined {
    const path = join(this.dir, MEMBERSHIP_FILE);
    if (!existsSync(path)) return undefined;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Membership;
    } catch {
      return undefined;
    }
  }

  saveMembership(m: Membership): void {
    this.ensure();
    writePrivate(join(this.dir, MEMBERSHIP_FILE), JSON.stringify(m, null, 1) + '\n');
  }

  /** The signed membership record, if any (re-asserted if the coordinator no longer knows this member). */
  loadRecord(): string | undefined {
    const path = join(this.dir, RECORD_FILE);
    if (!existsSync(path)) return undefined;
    return readFileSync(path, 'utf8').trim() || undefined;
  }

  /** Replace the record atomically (a crash leaves the old one or the new one, never half). */
  saveRecord(record: string): void {
    this.ensure();
    const path = join(this.dir, RECORD_FILE);
    writeFileSync(`${path}.tmp`, record.trim() + '\n', { mode: 0o644 });
    renameSync(`${path}.tmp`, path);
  }

  /** The pinned coordinator signing key (base64), if any. */
  signingKey(): string | undefined {
    const path = join(this.dir, SIGNING_KEY_FILE);
    if (!existsSync(path)) return undefined;
    return readFileSync(path, 'utf8').trim() || undefined;
  }

  saveSigningKey(key: string): void {
    this.ensure();
    writePrivate(join(this.dir, SIGNING_KEY_FILE), key.trim() + '\n');
  }

  /** After leaving: the key goes too, so a later start needs a token again. */
  clear(): void {
    rmSync(join(this.dir, MEMBERSHIP_FILE), { force: true });
    rmSync(join(this.dir, RECORD_FILE), { force: true });
    rmSync(join(this.dir, KEY_FILE), { force: true });
  }
}
