/**
 * `isthmus ping`: the agent's side. A probe (protocol/probe.ts) goes from our virtual IP to
 * the peer's through the same inside path as the member's own packets (flow note, session or
 * handshake, seal, relay framing, relay, mesh), and the peer's agent answers it after
 * decrypting it (before its inbound filter), saying which relay it is bound to and what the
 * policy lets us open towards it. So one probe shows:
 *
 *   path    our relay (the address we send to and the relay id that authenticated us) and the
 *           peer's relay: two different ids mean one mesh hop between them
 *   RTT     probe out, reply back, through everything a real packet crosses
 *   policy  the peer's verdict on flows from us (`none`: it may reach us, we may not reach it)
 *
 * Failure reasons, checked in this order: `unknown-target` (not in our peer map), `relay-down`
 * (not authenticated to a relay), then after the timeout `peer-offline` (the relay said the
 * peer has no session: UNREACHABLE; or the session is up and nothing came back), `no-session`
 * (the handshake never completed), and `policy` when the peer answered but allows us nothing.
 */
import { type Clock, formatAddr, isAddr, parseAddr } from '../common';
import { decodeProbe, encodeProbe, PROBE_KIND_REPLY, PROBE_KIND_REQUEST, PROBE_REQUEST_SIZE } from '../protocol';
import { DEVICE_HEADROOM, DEVICE_TAILROOM } from './inside';
import { EndpointKind } from './endpoint';
import { describeInbound } from './inbound-ports';
import type { Peer } from './peer';
import type { PeerSet } from './peer-set';

/** Probe replies this agent sends per second at most (all peers together). */
export const PROBE_REPLIES_PER_SECOND = 100;

export type PingFailure = 'unknown-target' | 'relay-down' | 'no-session' | 'peer-offline' | 'policy';

/** One peer-map entry, as the coordinator sent it (joined agents only). */
export interface DirectoryEntry {
  vip: string;
  originalIp: string;
  hostname: string;
  publicKey: string;
  tags: string[];
}

/** One line of `isthmus ping` output (the control socket streams these as JSON lines). */
export interface ProbeResult {
  type: 'probe';
  seq: number;
  ok: boolean;
  /** The peer: its virtual IP, and hostname when the peer map names it. */
  peer: { vip: string; hostname?: string };
  rttMs?: number;
  path?: PingPath;
  /** What we may open towards the peer, by its own filter (`*`, `none`, specs). */
  allowed?: string;
  reason?: PingFailure;
  message?: string;
}

export interface PingPath {
  kind: 'relay' | 'direct';
  /** relay: the relay address we send to (usually the VIP); direct: the peer's UDP address. */
  address: string;
  /** The relay that authenticated us. */
  relayId?: string;
  /** The relay the peer is bound to, as its reply says. */
  peerRelayId?: string;
  /** True when the two relays differ: the packets cross the relay mesh once. */
  meshHop: boolean;
}

export interface PingRequest {
  target: string;
  count: number;
  timeoutMs: number;
  intervalMs: number;
}

/** What the prober needs of the agent. */
export interface PingHost {
  clock: Clock;
  peers: PeerSet;
  localVip: number;
  /** Inject one plaintext packet into the inside path (headroom and tailroom as a TUN slot). */
  sendInside(buf: Buffer, off: number, len: number): void;
  /** Our relay session, when the agent has one. */
  relay(): { address: string; relayId: string; ready: boolean; state: string; rebinds: number } | undefined;
  /** The peer map's entries (joined agents), for hostnames, original IPs and tags. */
  directory(): readonly DirectoryEntry[];
}

interface Pending {
  resolve(r: { relayId: string; allowed: string; rttMs: number }): void;
  sentAt: number;
}

export class Prober {
  private nextId = (Math.random() * 0x7fffffff) >>> 0;
  private readonly pending = new Map<number, Pending>();
  /** vip → time the relay last said it has no session for it (UNREACHABLE). */
  private readonly unreachableAt = new Map<number, number>();
  private windowStart = 0;
  private repliesInWindow = 0;

  constructor(private readonly h: PingHost) {}

  /** The relay said it has no session for `vip`. */
  onUnreachable(vip: number): void {
    this.unreachableAt.set(vip >>> 0, this.h.clock.now());
    if (this.unreachableAt.size > 1024) this.unreachableAt.clear();
  }

  /** A decrypted probe from `peer` (its source already checked against the peer's addresses). */
  receive(peer: Peer, buf: Buffer, off: number, len: number): void {
    const m = decodeProbe(buf, off, len);
    if (!m || m.dst !== this.h.localVip) return;
    if (m.kind === PROBE_KIND_REPLY) {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      p.resolve({ relayId: m.relayId, allowed: m.allowed, rttMs: this.h.clock.now() - p.sentAt });
      return;
    }
    const now = this.h.clock.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.repliesInWindow = 0;
    }
    if (++this.repliesInWindow > PROBE_REPLIES_PER_SECOND) return;
    const relay = this.h.relay();
    const out = Buffer.alloc(DEVICE_HEADROOM + PROBE_REQUEST_SIZE + DEVICE_TAILROOM);
    const n = encodeProbe(out, DEVICE_HEADROOM, {
      kind: PROBE_KIND_REPLY, id: m.id, src: this.h.localVip, dst: m.src,
      relayId: peer.endpoint?.kind === EndpointKind.Relay ? relay?.relayId ?? '' : '', allowed: describeInbound(peer.inbound),
    });
    // Not from inside the outside path's batch: the reply is sealed after it.
    queueMicrotask(() => this.h.sendInside(out, DEVICE_HEADROOM, n));
  }

  /** Send one probe to `vip`; resolves with the reply, or undefined after `timeoutMs`. */
  probe(vip: number, timeoutMs: number): Promise<{ relayId: string; allowed: string; rttMs: number } | undefined> {
    const id = this.nextId = (this.nextId + 1) >>> 0;
    const out = Buffer.alloc(DEVICE_HEADROOM + PROBE_REQUEST_SIZE + DEVICE_TAILROOM);
    const n = encodeProbe(out, DEVICE_HEADROOM, { kind: PROBE_KIND_REQUEST, id, src: this.h.localVip, dst: vip, relayId: '', allowed: '' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.pending.set(id, {
        sentAt: this.h.clock.now(),
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
      this.h.sendInside(out, DEVICE_HEADROOM, n);
    });
  }

  /** Resolve the target to one peer, or say why not. */
  resolve(target: string): { peer: Peer; vip: number; entry?: DirectoryEntry } | { reason: PingFailure; message: string } {
    const dir = this.h.directory();
    const self = formatAddr(this.h.localVip);
    const t = target.trim();
    let entry: DirectoryEntry | undefined;
    let peer: Peer | undefined;
    if (isAddr(t)) {
      entry = dir.find((e) => e.vip === t || e.originalIp === t);
      peer = entry ? this.h.peers.get(entry.publicKey) : this.h.peers.routes.lookup(parseAddr(t));
    } else {
      entry = dir.find((e) => e.hostname.toLowerCase() === t.toLowerCase());
      peer = entry ? this.h.peers.get(entry.publicKey) : undefined;
    }
    if (entry?.vip === self || t === self) return { reason: 'unknown-target', message: `${t} is this member (${self})` };
    if (!peer) {
      return {
        reason: 'unknown-target',
        message: entry
          ? `${t}: its peer-map entry was refused by this agent (overlapping addresses; see the agent log)`
          : `${t}: not in this member's peer map (no such member, or the policy connects us in neither direction)`,
      };
    }
    const vip = entry ? parseAddr(entry.vip) : (peer.allowedIps[0]?.addr ?? 0);
    return { peer, vip, entry };
  }

  /** Run `req.count` probes, calling `emit` with each result; resolves true when all succeeded. */
  async ping(req: PingRequest, emit: (r: ProbeResult) => void, signal?: AbortSignal): Promise<boolean> {
    const r = this.resolve(req.target);
    if ('reason' in r) {
      emit({ type: 'probe', seq: 1, ok: false, peer: { vip: req.target }, reason: r.reason, message: r.message });
      return false;
    }
    const { peer, vip, entry } = r;
    const who = { vip: formatAddr(vip), ...(entry ? { hostname: entry.hostname } : {}) };
    let allOk = true;
    for (let seq = 1; seq <= req.count && !signal?.aborted; seq++) {
      if (seq > 1) await new Promise((res) => setTimeout(res, req.intervalMs));
      const res = await this.probeOnce(peer, vip, entry, req.timeoutMs);
      allOk &&= res.ok;
      emit({ type: 'probe', seq, peer: who, ...res });
    }
    return allOk;
  }

  private async probeOnce(peer: Peer, vip: number, entry: DirectoryEntry | undefined, timeoutMs: number): Promise<Omit<ProbeResult, 'type' | 'seq' | 'peer'>> {
    const relay = this.h.relay();
    const viaRelay = !peer.endpoint || peer.endpoint.kind === EndpointKind.Relay;
    if (viaRelay && (!relay || !relay.ready)) {
      return {
        ok: false, reason: 'relay-down',
        message: relay
          ? `relay down: not authenticated to relay ${relay.address} (${relay.state}${relay.rebinds ? `, ${relay.rebinds} failovers` : ''})`
          : 'relay down: this agent has no relay configured for this peer',
      };
    }
    const sentAt = this.h.clock.now();
    const reply = await this.probe(vip, timeoutMs);
    const path: PingPath = viaRelay
      ? { kind: 'relay', address: relay!.address, relayId: relay!.relayId, meshHop: false }
      : { kind: 'direct', address: `${formatAddr(peer.endpoint!.ip)}:${peer.endpoint!.port}`, meshHop: false };
    if (reply) {
      if (viaRelay && reply.relayId) {
        path.peerRelayId = reply.relayId;
        path.meshHop = reply.relayId !== relay!.relayId;
      }
      const base = { rttMs: Math.round(reply.rttMs * 100) / 100, path, allowed: reply.allowed };
      if (reply.allowed === 'none') {
        return { ok: false, ...base, reason: 'policy', message: this.policyMessage(entry, vip) };
      }
      return { ok: true, ...base };
    }
    const name = entry ? `${entry.hostname} (${formatAddr(vip)})` : formatAddr(vip);
    const unreachable = this.unreachableAt.get(vip);
    if (unreachable !== undefined && unreachable >= sentAt) {
      return { ok: false, path, reason: 'peer-offline', message: `peer offline: relay ${relay?.relayId || relay?.address} has no session for ${name} (its agent is not bound to any relay)` };
    }
    if (!peer.current) {
      return { ok: false, path, reason: 'no-session', message: `no session: the handshake with ${name} did not complete within ${timeoutMs} ms (peer offline, or this member is not in its peer map)` };
    }
    return { ok: false, path, reason: 'peer-offline', message: `peer offline: no answer from ${name} within ${timeoutMs} ms (its agent or host is down)` };
  }

  private policyMessage(entry: DirectoryEntry | undefined, vip: number): string {
    const me = this.h.directory().find((e) => e.vip === formatAddr(this.h.localVip));
    const tags = (e: DirectoryEntry | undefined) => (e && e.tags.length ? e.tags.map((t) => `tag:${t}`).join(',') : 'untagged');
    const them = entry ? `${entry.hostname} (${tags(entry)})` : formatAddr(vip);
    const us = me ? `${me.hostname} (${tags(me)})` : 'this member';
    return `policy: ${us} may not open flows to ${them}; it is in our peer map only because it may open flows to us (their replies pass)`;
  }
}
