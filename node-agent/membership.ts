/**
 * The agent's control plane: join through the coordinator (key proof, token on first
 * join), bring the data path up with the vip it got, then keep the peer set in step with
 * the coordinator's pushed peer map. If the coordinator is unreachable, the agent keeps
 * the last map (also across a restart, from the state dir) and reconnects with backoff.
 */
import { hostname as osHostname } from 'node:os';
import { CoordinatorClient, SessionExpiredError, type PeerMapUpdate } from '../coordinator/client';
import type { Peer as PeerEntry } from '../coordinator/types';
import { publicKeyFromPrivate, keyToBase64 } from '../protocol/keys';
import { parseAddr, type Prefix } from '../common/ipv4';
import type { Logger } from '../common/logger';
import { Endpoint } from './endpoint';
import type { PeerSpec } from './peer-set';
import type { StateDir, Membership } from './state-dir';

export interface JoinOptions {
  coordinatorUrl: string;
  token?: string;
  originalIp: string;
  hostname?: string;
  tags: string[];
}

/** What the data path needs of the agent, so this file stays testable without a TUN. */
export interface PeerSink {
  upsertPeer(spec: PeerSpec): void;
  removePeer(publicKeyBase64: string): void;
  peerKeys(): string[];
}

/** A member's peer entry → the session engine's peer: reached through the relay by vip,
 *  owning its vip and its original IP (so transparent mode can deliver to it). */
export function peerSpecFromEntry(p: PeerEntry): PeerSpec {
  const vip = parseAddr(p.vip);
  const allowedIps: Prefix[] = [{ addr: vip, bits: 32 }];
  if (p.originalIp && p.originalIp !== p.vip) allowedIps.push({ addr: parseAddr(p.originalIp), bits: 32 });
  return { publicKey: p.publicKey, allowedIps, endpoint: Endpoint.relay(vip) };
}


export class MembershipClient {
  readonly client: CoordinatorClient;
  private readonly privateKey: Buffer;
  readonly publicKey: string;
  private sessionToken: string | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly opts: JoinOptions, private readonly state: StateDir, private readonly log: Logger) {
    this.client = new CoordinatorClient({ url: opts.coordinatorUrl, logger: log });
    this.privateKey = state.privateKey();
    this.publicKey = keyToBase64(publicKeyFromPrivate(this.privateKey));
  }

  get key(): Buffer {
    return this.privateKey;
  }

  /** Join (or re-join: same key, same vip, no token needed). Falls back to the saved
   *  membership when the coordinator cannot be reached and this key joined before. */
  async join(): Promise<Membership> {
    try {
      const r = await this.client.join({
        privateKey: this.privateKey, publicKey: publicKeyFromPrivate(this.privateKey), token: this.opts.token,
        originalIp: this.opts.originalIp, hostname: this.opts.hostname ?? osHostname(), tags: this.opts.tags,
      });
      this.sessionToken = r.sessionToken;
      const m: Membership = { vip: r.vip, cidr: r.cidr, version: r.version, peers: r.peers };
      this.state.saveMembership(m);
      return m;
    } catch (err) {
      const saved = this.state.loadMembership();
      const status = (err as { status?: number }).status;
      if (saved && status === undefined) {
        this.log.warn({ err: (err as Error).message }, 'coordinator unreachable: starting from the saved membership');
        return saved;
      }
      throw err;
    }
  }

  /** Apply a map to the peer set: everything in it (but us), nothing else. */
  applyFull(peers: Iterable<PeerEntry>, sink: PeerSink): void {
    const keep = new Set<string>();
    for (const p of peers) {
      if (p.publicKey === this.publicKey) continue;
      keep.add(p.publicKey);
      sink.upsertPeer(peerSpecFromEntry(p));
    }
    for (const k of sink.peerKeys()) if (!keep.has(k)) sink.removePeer(k);
  }

  /** Follow the coordinator's peer map until stop(); re-joins when the session expires. */
  async run(initial: Membership, sink: PeerSink): Promise<void> {
    let since: number | undefined = initial.version;
    let seed = initial.peers;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      if (!this.sessionToken) {
        try {
          const m = await this.join();
          if (!this.sessionToken) throw new Error('coordinator still unreachable');
          this.applyFull(m.peers, sink);
          since = m.version;
          seed = m.peers;
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'join failed; retrying');
          await new Promise((r) => setTimeout(r, 2000));
          continue;
        }
      }
      try {
        await this.client.watchPeers(this.sessionToken!, since, (u: PeerMapUpdate) => {
          if (u.full) this.applyFull(u.peers.values(), sink);
          else {
            for (const p of u.upserts) if (p.publicKey !== this.publicKey) sink.upsertPeer(peerSpecFromEntry(p));
            const byVip = new Map(seed.map((p) => [p.vip, p.publicKey]));
            for (const vip of u.removals) {
              const key = byVip.get(vip);
              if (key) sink.removePeer(key);
            }
          }
          since = u.version;
          seed = [...u.peers.values()];
          this.state.saveMembership({ vip: initial.vip, cidr: initial.cidr, version: u.version, peers: seed });
          this.log.info({ peers: u.peers.size, version: u.version, full: u.full }, 'peer map updated');
        }, signal, { initial: seed });
      } catch (err) {
        if (err instanceof SessionExpiredError) {
          this.log.warn('coordinator session expired: re-joining');
          this.sessionToken = undefined;
          continue;
        }
        throw err;
      }
    }
  }

  stop(): void {
    this.abort.abort();
  }

  /** Remove this member from the coordinator and forget its key. */
  async leave(): Promise<void> {
    if (!this.sessionToken) await this.join();
    if (!this.sessionToken) throw new Error('cannot reach the coordinator to leave');
    await this.client.leave(this.sessionToken);
    this.state.clear();
  }
}
