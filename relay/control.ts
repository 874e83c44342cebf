/**
 * Control frames at the relay: HELLO → CHALLENGE, AUTH → (directory) → bind + AUTH_OK,
 * PING → PONG. Everything unauthenticated is answered statelessly (challenge.ts) with a
 * reply no longer than the request; only an AUTH whose proof verified reaches the directory.
 * AUTH order, cheapest first: length/version, challenge MAC + single use (one BLAKE2s; garbage
 * stops here as 'auth-bad-challenge'), the X25519 work budget, the key proof, the directory.
 */
import { type DatagramSocket, type Logger, formatAddr } from '../common';
import {
  AuthFailReason, FrameType, RELAY_PROTOCOL_VERSION, decodeAuth, decodeHello, decodePingSeq, encodeAuthFail,
  encodeAuthOk, encodeChallenge, encodePing,
} from '../protocol';
import type { ChallengeIssuer } from './challenge';
import type { RateLimiter, WorkLimiter } from './rate-limit';
import type { DropReason } from './drop-reason';
import type { MemberDirectory } from './member-directory';
import type { PolicyGate } from './policy-gate';
import { tupleKey, type Session, type SessionTable } from './session-table';
import type { RelayStats } from './stats';

export interface SessionListener {
  sessionUp?(s: Session): void;
  sessionDown?(s: Session, why: 'replaced' | 'expired' | 'closed' | 'removed'): void;
  /** Periodically, with every live session (TTL refresh of external records). */
  refresh?(sessions: Iterable<Session>): void;
}

export interface ControlDeps {
  sessions: SessionTable;
  socket: DatagramSocket;
  stats: RelayStats;
  challenges: ChallengeIssuer;
  directory: MemberDirectory;
  /** When set, a member's tags are loaded before it is bound (its policy class is never unknown). */
  policy?: PolicyGate;
  log: Logger;
  listener?: SessionListener;
  relayId: string;
  keepaliveSeconds: number;
  maxPendingAuth: number;
  /** Budget for AUTH proof checks (one X25519 each), keyed by source IP; taken only after the challenge MAC verified. */
  authLimiter: WorkLimiter;
  /** Limits AUTH_FAIL replies to AUTHs that failed the cheap checks (per 4-tuple and global). */
  replyLimiter: RateLimiter;
  now: () => number;
  isClosed: () => boolean;
  sendReauth: (addr: number, port: number, now: number) => void;
}

export class ControlHandlerImpl {
  private pendingAuth = 0;
  constructor(private readonly d: ControlDeps) {}

  readonly handle = (buf: Buffer, off: number, len: number, type: number, addr: number, port: number,
    session: Session | undefined, now: number): void => {
    switch (type) {
      case FrameType.HELLO: return this.hello(buf, off, len, addr, port, now);
      case FrameType.AUTH: return this.auth(buf, off, len, addr, port, now);
      case FrameType.PING: return this.ping(buf, off, len, addr, port, session, now);
      case FrameType.CHALLENGE: case FrameType.AUTH_OK: case FrameType.AUTH_FAIL: case FrameType.PONG:
      case FrameType.REAUTH: case FrameType.UNREACHABLE:
        this.d.stats.drop('unexpected-type');
        return;
      default:
        // Unknown types are skipped (a newer member may send frames this relay predates).
        this.d.stats.drop('unknown-type');
        if (session) session.lastSeen = now;
    }
  };

  private hello(buf: Buffer, off: number, len: number, addr: number, port: number, now: number): void {
    const version = decodeHello(buf, off, len);
    if (version === undefined) return this.d.stats.drop('too-short');
    if (version !== RELAY_PROTOCOL_VERSION) return this.fail('bad-version', AuthFailReason.BAD_VERSION, addr, port);
    const c = this.d.challenges.issue(addr, port, now);
    const f = encodeChallenge(c);
    this.d.socket.send(f, 0, f.length, addr, port);
    this.d.stats.challengesSent++;
  }

  private auth(buf: Buffer, off: number, len: number, addr: number, port: number, now: number): void {
    const a = decodeAuth(buf, off, len);
    if (!a) return this.d.stats.drop('too-short');
    if (a.version !== RELAY_PROTOCOL_VERSION) return this.fail('bad-version', AuthFailReason.BAD_VERSION, addr, port);
    // The challenge MAC first (one BLAKE2s): garbage, foreign, stale and spent challenges never
    // reach the work budget, so a flood of them cannot starve genuine AUTHs. Their AUTH_FAIL is
    // rate-limited per 4-tuple and globally (a member with a stale challenge re-HELLOs anyway).
    const c = this.d.challenges.checkChallenge(a.ephemeralPublic, a.nonce, addr, port, now);
    if (c === 'stale') return this.failLimited('auth-bad-challenge', AuthFailReason.STALE_CHALLENGE, addr, port, now);
    if (c === 'replayed') return this.failLimited('auth-replayed', AuthFailReason.REPLAYED, addr, port, now);
    // Over budget (per source IP, then global): drop silently; the member retries with backoff.
    // Only senders that received a challenge at their own 4-tuple get here.
    if (!this.d.authLimiter.take(addr, now)) return this.d.stats.drop('auth-overload');
    const verdict = this.d.challenges.verifyProof(c, a.staticPublic, a.proof, now);
    if (verdict === 'replayed') return this.fail('auth-replayed', AuthFailReason.REPLAYED, addr, port);
    if (verdict === 'bad-proof') return this.fail('auth-failed', AuthFailReason.BAD_PROOF, addr, port);
    if (this.pendingAuth >= this.d.maxPendingAuth) return this.fail('auth-overload', AuthFailReason.UNAVAILABLE, addr, port);
    this.pendingAuth++;
    this.authLookup(a.staticPublic, a.claimedVip, addr, port).finally(() => {
      this.pendingAuth--;
    });
  }

  /** Directory (and tags) for a verified AUTH, then bind; never rejects. */
  private async authLookup(staticPublic: Uint8Array, claimedVip: number, addr: number, port: number): Promise<void> {
    let member: { vip: number } | undefined;
    let tags: { tags: readonly string[]; gen: number } | undefined;
    try {
      member = await this.d.directory.lookupByKey(staticPublic);
      if (member && member.vip >>> 0 === claimedVip && this.d.policy) tags = await this.d.policy.tagsForBind(member.vip >>> 0);
    } catch (err) {
      if (this.d.isClosed()) return;
      this.d.log.warn({ err: (err as Error).message }, this.d.policy ? 'member directory or tags lookup failed' : 'member directory lookup failed');
      return this.fail('auth-unavailable', AuthFailReason.UNAVAILABLE, addr, port, true);
    }
    if (this.d.isClosed()) return;
    if (!member) return this.fail('auth-unknown-key', AuthFailReason.UNKNOWN_KEY, addr, port, true);
    if (member.vip >>> 0 !== claimedVip) return this.fail('auth-vip-mismatch', AuthFailReason.VIP_MISMATCH, addr, port, true);
    this.bind(member.vip >>> 0, addr, port, staticPublic, tags);
  }

  private bind(vip: number, addr: number, port: number, publicKey: Uint8Array, tags?: { tags: readonly string[]; gen: number }): void {
    const { sessions, stats, log, listener } = this.d;
    const { session, replaced } = sessions.bind(vip, addr, port, publicKey, this.d.now(), tags?.tags);
    if (tags) this.d.policy?.adopt(session, tags.gen);
    for (const old of replaced) listener?.sessionDown?.(old, 'replaced');
    listener?.sessionUp?.(session);
    stats.authOk++;
    const ok = encodeAuthOk({ version: RELAY_PROTOCOL_VERSION, vip, keepaliveSeconds: this.d.keepaliveSeconds, relayId: this.d.relayId });
    this.d.socket.send(ok, 0, ok.length, addr, port);
    this.d.socket.flush();
    log.info({ vip: formatAddr(vip), udpAddr: `${formatAddr(addr)}:${port}`, rebind: replaced.length > 0 }, 'member bound');
  }

  private ping(buf: Buffer, off: number, len: number, addr: number, port: number, session: Session | undefined,
    now: number): void {
    const seq = decodePingSeq(buf, off, len);
    if (seq === undefined) return this.d.stats.drop('too-short');
    if (!session) {
      this.d.stats.drop('unbound-source');
      this.d.sendReauth(addr, port, now);
      return;
    }
    session.lastSeen = now;
    const pong = encodePing(FrameType.PONG, seq);
    this.d.socket.send(pong, 0, pong.length, addr, port);
    this.d.stats.pongsSent++;
  }

  /** `fail` for frames that cost nothing to send: the reply is rate-limited (never a reflector). */
  private failLimited(reason: DropReason, code: number, addr: number, port: number, now: number): void {
    if (!this.d.replyLimiter.allow(tupleKey(addr, port), now)) return this.d.stats.drop(reason);
    this.fail(reason, code, addr, port);
  }

  private fail(reason: DropReason, code: number, addr: number, port: number, flush = false): void {
    this.d.stats.drop(reason);
    const f = encodeAuthFail(code);
    this.d.socket.send(f, 0, f.length, addr, port);
    if (flush) this.d.socket.flush();
  }
}
