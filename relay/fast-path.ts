/**
 * The relay's local forwarding fast path: a C mirror (native-bindings RelayFastTable) of the
 * session table and the policy verdicts, which forwards local DATA on the socket's receive
 * batch before JS sees it (native-bindings/src/relay_fast.c). JS stays the source of truth;
 * this file is the one place that keeps the mirror exact:
 *
 *   SessionTable.bind / remove / clear        -> set / delete / clear   (bind, rebind, expire,
 *                                                 node-removed, mesh moves, relay stop)
 *   PolicyGate: a session's class assigned    -> set (class only)       (adopt at AUTH,
 *                                                 node-changed tags, policy reload, reconnect)
 *   PolicyGate: a verdict cell decided        -> verdict
 *   PolicyGate: policy (re)applied, mode      -> policy (all verdicts unknown again)
 *   relay without a PolicyGate                -> policy off (forward between any members)
 *
 * What C forwards, it counts (merged into the relay's stats, so isthmus_relay_* stay true),
 * and it marks the sender seen: the relay's housekeeping reads the marks (`drainSeen`) before
 * its idle-expiry sweep, so a member whose traffic never reaches JS is not expired.
 * A frame C is unsure about (unknown verdict, class not known yet, policy loading, anything
 * but local DATA) reaches the JS forwarder unchanged.
 */
import type { DatagramSocket } from '../common';
import { FAST_ALLOW, FAST_DENY, FAST_POLICY_OFF, type RelayFastOptions, type RelayFastStats, type RelayFastTable } from '../native-bindings';
import { FrameType, MSG_TRANSPORT_MIN_SIZE } from '../protocol';
import type { Session, SessionTableMirror } from './session-table';

/** What PolicyGate tells a mirror (policy-gate.ts deps `mirror`). */
export interface PolicyMirror {
  /** `s.policyClass` was (re)assigned. */
  classified(s: Session): void;
  /** The verdict for frames from class a to class b. */
  decided(a: number, b: number, allow: boolean): void;
  /** A policy was applied (or none): every verdict is unknown again; `mode` as PolicyGate.mode. */
  applied(mode: number): void;
}

interface FastCapable {
  relayFastPath(opts: RelayFastOptions): RelayFastTable;
}

function fastCapable(s: DatagramSocket): s is DatagramSocket & FastCapable {
  return typeof (s as Partial<FastCapable>).relayFastPath === 'function';
}

export class FastPath implements SessionTableMirror, PolicyMirror {
  private constructor(private readonly t: RelayFastTable) {}

  /** The fast path of a native socket; undefined for a socket without one (node:dgram). */
  static open(socket: DatagramSocket): FastPath | undefined {
    if (!fastCapable(socket)) return undefined;
    return new FastPath(socket.relayFastPath({ dataType: FrameType.DATA, minPayload: MSG_TRANSPORT_MIN_SIZE }));
  }

  bound(s: Session): void {
    this.t.set(s.vip, s.addr, s.port, s.policyClass);
  }

  unbound(s: Session): void {
    this.t.delete(s.vip);
  }

  cleared(): void {
    this.t.clear();
  }

  classified(s: Session): void {
    this.t.set(s.vip, s.addr, s.port, s.policyClass);
  }

  decided(a: number, b: number, allow: boolean): void {
    this.t.verdict(a, b, allow ? FAST_ALLOW : FAST_DENY);
  }

  applied(mode: number): void {
    this.t.policy(mode);
  }

  /** No policy component: C forwards between any members (as the JS forwarder does). */
  policyOff(): void {
    this.t.policy(FAST_POLICY_OFF);
  }

  enable(on: boolean): void {
    this.t.enable(on);
  }

  get enabled(): boolean {
    return this.t.enabled;
  }

  /** Entries in the C mirror (tests: equals the session count). */
  get size(): number {
    return this.t.size;
  }

  drainSeen(fn: (vip: number) => void): void {
    this.t.drainSeen(fn);
  }

  get stats(): RelayFastStats {
    return this.t.stats;
  }
}
