/**
 * The relay's hot path, per received batch:
 *
 *   1. Header check: at least 8 bytes and a type in 0x10..0x1f, else 'too-short'/'malformed'.
 *   2. DATA from a bound 4-tuple: the payload must look like a WireGuard message (type 1..4,
 *      three zero bytes, at least a keepalive's length); look up the destination vip; rewrite
 *      bytes 4-7 IN PLACE from destination to the sender's vip; queue to the destination's
 *      4-tuple. DATA from an unbound 4-tuple: 'unbound-source' and a rate-limited REAUTH.
 *      Destination bound to another relay: one mesh hop (mesh.ts). Unknown destination:
 *      'unknown-destination' and a rate-limited UNREACHABLE.
 *   3. Access policy (policy-gate.ts), when one is set: the classes of sender and destination
 *      must be connected, else 'policy'. A remote destination whose tags are being looked up:
 *      the frame is held and run through here again (rerun) when they are known.
 *   4. Every other type goes to the control handler (auth, keepalive).
 *   5. One `flush()` per batch.
 *
 * Never throws per packet; no allocation on the DATA path.
 */
import type { DatagramBatch, DatagramSocket } from '../common';
import { MSG_TRANSPORT_MIN_SIZE, FrameType, RELAY_HEADER_LEN, RELAY_OFFSET_PAYLOAD, RELAY_OFFSET_VIP, isRelayFrameType, readU32, writeU32 } from '../protocol';
import type { RateLimiter } from './rate-limit';
import { MeshForwardResult, type Mesh } from './mesh';
import { HeldPort } from './policy-held';
import { POLICY_OFF, type PolicyGate } from './policy-gate';
import type { Session, SessionTable } from './session-table';
import { tupleKey } from './session-table';
import type { RelayStats } from './stats';

/** Handles every non-DATA frame; `session` is the sender's session if its 4-tuple is bound. */
export type ControlHandler = (buf: Buffer, off: number, len: number, type: number, addr: number, port: number,
  session: Session | undefined, now: number) => void;

export interface ForwarderDeps {
  sessions: SessionTable;
  socket: DatagramSocket;
  stats: RelayStats;
  replyLimiter: RateLimiter;
  control: ControlHandler;
  now: () => number;
  /** Forwards DATA for members bound to another relay (one hop); absent on a lone relay. */
  mesh?: Mesh;
  /** The access policy; absent when the relay has no PolicySource. */
  policy?: PolicyGate;
}

/** Header-only reply frames, reused (the socket copies on send). */
const reauthFrame = Buffer.from([FrameType.REAUTH, 0, 0, 0, 0, 0, 0, 0]);
const unreachableFrame = Buffer.alloc(RELAY_HEADER_LEN);
unreachableFrame[0] = FrameType.UNREACHABLE;

/** Payload length of the smallest WireGuard message (a transport keepalive). */
const MIN_WG_LEN = MSG_TRANSPORT_MIN_SIZE;

export class Forwarder {
  constructor(private readonly d: ForwarderDeps) {}

  /** Bound once as the socket's receive handler. */
  readonly onBatch = (batch: DatagramBatch): void => {
    const now = this.d.now();
    const { data, offsets, lengths, addrs, ports } = batch;
    this.d.stats.framesReceived += batch.count;
    for (let i = 0; i < batch.count; i++) {
      this.frame(data, offsets[i], lengths[i], addrs[i], ports[i], now);
    }
    this.d.socket.flush();
    this.d.mesh?.flush();
  };

  private frame(buf: Buffer, off: number, len: number, addr: number, port: number, now: number): void {
    const { stats, sessions } = this.d;
    if (len < RELAY_HEADER_LEN) {
      stats.drop('too-short');
      return;
    }
    const type = buf[off];
    if (!isRelayFrameType(type)) {
      stats.drop('malformed');
      return;
    }
    const src = sessions.byAddress(addr, port);
    if (type !== FrameType.DATA) {
      this.d.control(buf, off, len, type, addr, port, src, now);
      return;
    }
    if (!src) {
      stats.drop('unbound-source');
      this.sendReauth(addr, port, now);
      return;
    }
    src.lastSeen = now;
    if (len < RELAY_HEADER_LEN + MIN_WG_LEN) {
      stats.drop('too-short');
      return;
    }
    const p = off + RELAY_OFFSET_PAYLOAD;
    const wgType = buf[p];
    if (wgType < 1 || wgType > 4 || buf[p + 1] !== 0 || buf[p + 2] !== 0 || buf[p + 3] !== 0) {
      stats.drop('malformed');
      return;
    }
    const dstVip = readU32(buf, off + RELAY_OFFSET_VIP);
    const dst = sessions.byOverlay(dstVip);
    const gate = this.d.policy;
    if (!dst) {
      if (this.d.mesh) {
        if (gate !== undefined && gate.mode !== POLICY_OFF) {
          // Route first: a destination known to be nowhere needs no tags lookup, and an unknown
          // one is charged to the sender's lookup budget before any Redis work is started.
          const pre = this.d.mesh.precheck(src.vip, dstVip, now);
          if (pre === MeshForwardResult.LIMITED) return stats.drop('mesh-lookup-limited');
          if (pre === MeshForwardResult.NONE) return this.unreachable(dstVip, addr, port, now);
          const c = gate.remoteClass(dstVip);
          if (c < 0) return gate.hold(dstVip, HeldPort.MEMBER, buf, off, len, addr, port, now);
          if (!gate.admit(src.policyClass, c, src.vip, dstVip, now)) return;
        }
        const r = this.d.mesh.forward(buf, off, len, src.vip, dstVip, now);
        if (r === MeshForwardResult.SENT || r === MeshForwardResult.HELD) return;
        if (r === MeshForwardResult.PENDING) return stats.drop('mesh-route-pending');
        if (r === MeshForwardResult.LIMITED) return stats.drop('mesh-lookup-limited');
      }
      return this.unreachable(dstVip, addr, port, now);
    }
    if (gate !== undefined && gate.mode !== POLICY_OFF && !gate.admit(src.policyClass, dst.policyClass, src.vip, dstVip, now)) return;
    writeU32(buf, off + RELAY_OFFSET_VIP, src.vip);
    // Zero copy: the rx slab stays untouched until the flush() in onBatch.
    this.d.socket.sendInPlace(buf, off, len, dst.addr, dst.port);
    stats.framesForwarded++;
    stats.bytesForwarded += len;
  }

  /** 'unknown-destination' and a rate-limited UNREACHABLE. */
  private unreachable(dstVip: number, addr: number, port: number, now: number): void {
    this.d.stats.drop('unknown-destination');
    if (this.d.replyLimiter.allow(-1 - dstVip, now)) {
      writeU32(unreachableFrame, RELAY_OFFSET_VIP, dstVip);
      this.d.socket.send(unreachableFrame, 0, RELAY_HEADER_LEN, addr, port);
      this.d.stats.unreachableSent++;
    }
  }

  /** A held frame (policy-held.ts) through the hot path again, sent at once. */
  rerun(buf: Buffer, addr: number, port: number): void {
    this.frame(buf, 0, buf.length, addr, port, this.d.now());
    this.d.socket.flush();
    this.d.mesh?.flush();
  }

  /** REAUTH to a 4-tuple we have no session for, at most once per interval per tuple. */
  sendReauth(addr: number, port: number, now: number): void {
    if (!this.d.replyLimiter.allow(tupleKey(addr, port), now)) return;
    this.d.socket.send(reauthFrame, 0, RELAY_HEADER_LEN, addr, port);
    this.d.stats.reauthSent++;
  }
}
