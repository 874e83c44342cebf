/**
 * Control frames at the relay: HELLO → CHALLENGE, AUTH → (directory) → bind + AUTH_OK,
 * PING → PONG. Everything unauthenticated is answered statelessly (challenge.ts) with a
 * reply no longer than the request; only an AUTH whose proof verified reaches the directory.
 */
import type { DatagramSocket } from '../common';
import type { Logger } from '../common';
import { formatAddr } from '../common';
import {
  AuthFailReason, FrameType, RELAY_PROTOCOL_VERSION, decodeAuth, decodeHello, decodePingSeq, encodeAuthFail,
  encodeAuthOk, encodeChallenge, encodePing,
} from '../protocol';
import type { ChallengeIssuer } from './challenge';
import type { WorkLimiter } from './rate-limit';
import type { DropReason } from './drop-reason';
import type { MemberDirectory } from './member-directory';
import type { Session, SessionTable } from './session-table';
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
  log: Logger;
  listener?: SessionListener;
  relayId: string;
  keepaliveSeconds: number;
  maxPendingAuth: number;
  /** Budget for AUTH proof checks (one X25519 each), keyed by source IP. */
  authLimiter: WorkLimiter;
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
    // Over budget: drop silently; the member retries with backoff.
    if (!this.d.authLimiter.take(addr, now)) return this.d.stats.drop('auth-overload');
    const verdict = this.d.challenges.verify(a.ephemeralPublic, a.nonce, a.staticPublic, a.proof, addr, port, now);
    if (verdict === 'stale') return this.fail('auth-stale', AuthFailReason.STALE_CHALLENGE, addr, port);
    if (verdict === 'replayed') return this.fail('auth-replayed', AuthFailReason.REPLAYED, addr, port);
    if (verdict === 'bad-proof') return this.fail('auth-failed', AuthFailReason.BAD_PROOF, addr, port);
    if (this.pendingAuth >= this.d.maxPendingAuth) return this.fail('auth-overload', AuthFailReason.UNAVAILABLE, addr, port);
    this.pendingAuth++;
    this.d.directory.lookupByKey(a.staticPublic).then((member) => {
      if (this.d.isClosed()) return;
      if (!member) return this.fail('auth-unknown-key', AuthFailReason.UNKNOWN_KEY, addr, port, true);
      if (member.vip >>> 0 !== a.claimedVip) return this.fail('auth-vip-mismatch', AuthFailReason.VIP_MISMATCH, addr, port, true);
      this.bind(member.vip >>> 0, addr, port, a.staticPublic);
    }, (err: Error) => {
      if (this.d.isClosed()) return;
      this.d.log.warn({ err: err.message }, 'member directory lookup failed');
      this.fail('auth-unavailable', AuthFailReason.UNAVAILABLE, addr, port, true);
    }).finally(() => {
      this.pendingAuth--;
    });
  }

  private bind(vip: number, addr: number, port: number, publicKey: Uint8Array): void {
    const { sessions, stats, log, listener } = this.d;
    const { session, replaced } = sessions.bind(vip, addr, port, publicKey, this.d.now());
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

  private fail(reason: DropReason, code: number, addr: number, port: number, flush = false): void {
    this.d.stats.drop(reason);
    const f = encodeAuthFail(code);
    this.d.socket.send(f, 0, f.length, addr, port);
    if (flush) this.d.socket.flush();
  }
}
