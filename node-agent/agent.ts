/**
 * `isthmus agent`: wires the session engine (device.ts) to a TUN device (inside) and a UDP
 * socket (outside), plus the relay client when peers are reached through a relay.
 *
 *   TUN batch ─► Device.readInsidePackets ─► OutsideSender ─► socket.sendInPlace (direct, or relay frame)
 *   UDP batch ─► relay frame? RelayClient.handleFrame ─► Device.readOutsidePackets ─► tun.writeInPlace
 *
 * One flush of each side per processed batch, and after each timer tick: what was sent or
 * written in place leaves before the slab it lives in is reused, and what the timers send
 * (handshake retries, keepalives) leaves at once.
 */
import { lookup } from 'node:dns/promises';
import { type Clock, type Logger, IDEAL_BATCH_SIZE, type DatagramSocket, type DatagramBatch, type PacketBatch, type TunDevice, contains, formatAddr, formatPrefix, masked, parseAddr, type Prefix } from '../common';
import { createLocalIdentity, type LocalIdentity, keyFromBase64, keyToBase64, DEFAULT_TIMER_CONFIG, type TimerConfig, RELAY_HEADER_LEN } from '../protocol';
import { DEFAULT_RELAY_CLIENT_TIMING, RelayClient } from './relay-client';
import { Device, DEVICE_HEADROOM, DEVICE_TAILROOM } from './device';
import { Endpoint, EndpointKind, type OutsideSender } from './endpoint';
import { PeerSet, type PeerSpec } from './peer-set';
import { compileInbound, describeInbound } from './inbound-ports';
import type { AgentConfig } from './config';
import { nodeCryptoAead, type BatchAead } from './batch-crypto';
import { aead as nativeAead, nativeAvailable } from '../native-bindings';
import { Prober, type DirectoryEntry, type PingRequest, type ProbeResult } from './ping';

/**
 * Relay keepalive and dead-relay detection (node-agent/relay-client.ts): an idle member PINGs
 * once per 10 s; with traffic in flight a relay silent for 0.3 s is probed every 0.2 s and is
 * dead after 3 unanswered probes (0.9 s after it was last heard). HELLO retries start at
 * 0.2 s and back off, jittered, to 5 s: a failover of many members onto relays whose AUTH
 * budget is full (300/s per relay) drains at that rate, each member retrying at least every 5 s.
 */
export const RELAY_FAILOVER_TIMING = { ...DEFAULT_RELAY_CLIENT_TIMING, authRetryMinMs: 200, authRetryMaxMs: 5_000 } as const;

/** How often the engine's timers run. WireGuard's timers have a granularity of seconds. */
const TICK_MS = 100;

export interface AgentComponents {
  clock: Clock;
  logger: Logger;
  openTun(opts: { name?: string; mtu: number; address: string; headroom: number; tailroom: number; offload?: boolean }): TunDevice;
  openUdpSocket(opts: { host: string; port: number }): DatagramSocket;
  /** Route a prefix into the TUN (transparent mode), e.g. `ip route replace CIDR dev TUN`. */
  addRoute?(cidr: string, device: string): Promise<void>;
  /** Batched AEAD for the data path. @default the native addon's when it is built, else (and for null) node:crypto's */
  aead?: BatchAead | null;
}

export interface AgentOptions {
  /** Timer durations; tests shorten REKEY_AFTER_TIME to watch a real rekey. @default spec values */
  timers?: Partial<TimerConfig>;
  /** Transparent mode: original prefixes routed into the TUN, so apps keep dialing original IPs. */
  routeOriginal?: Prefix[];
  /** Idle keepalive PING interval to the relay (traffic in flight is probed faster, see
   *  RELAY_FAILOVER_TIMING). @default RELAY_FAILOVER_TIMING.keepaliveMs */
  relayKeepaliveMs?: number;
  /**
   * This member's own addresses besides its overlay address: its original IP (a peer in
   * transparent mode dials it there, and the packet arrives with that destination). Inbound
   * packets to any other address are dropped (`not-our-address`). @default none
   */
  localAddresses?: number[];
  /** TUN offloads (TSO split on read, GRO-style coalescing on write; native-bindings
   *  TunOptions.offload). `false` runs the plain device, for debugging. @default true */
  tunOffload?: boolean;
}

const EMPTY = Buffer.alloc(0);

function newMessageBatch(capacity: number): DatagramBatch {
  return {
    count: 0, data: EMPTY, offsets: new Uint32Array(capacity), lengths: new Uint32Array(capacity),
    addrs: new Uint32Array(capacity), ports: new Uint32Array(capacity),
  };
}

async function resolveIpv4(host: string): Promise<number> {
  // Digits and dots are meant as an address: parse strictly, never let getaddrinfo read '010' as octal.
  if (/^[0-9.]+$/.test(host)) return parseAddr(host);
  const r = await lookup(host, { family: 4 });
  return parseAddr(r.address);
}

export class Agent {
  readonly local: LocalIdentity;
  readonly peers: PeerSet;
  readonly device: Device;
  readonly overlayAddress: number;
  private tun: TunDevice | undefined;
  /** Direct peers (a plain WireGuard peer, a member on the same network), on ListenPort. */
  private socket: DatagramSocket | undefined;
  /** The relay session, on its own ephemeral port: failover opens a new one, so the VIP's
   *  load balancer sees a new flow and picks a live relay (stale conntrack entries pin the old). */
  private relaySocket: DatagramSocket | undefined;
  private relay: RelayClient | undefined;
  /** Relay failovers so far. */
  relayRebinds = 0;
  private relayIp = 0;
  private relayPort = 0;
  private ticker: NodeJS.Timeout | undefined;
  private readonly timerConfig: TimerConfig;
  private readonly relayScratch = Buffer.alloc(RELAY_HEADER_LEN + 65536);
  /** `isthmus ping`: sends probes and answers the peers' (ping.ts). */
  readonly prober: Prober;
  /** The peer map's entries (joined agents): hostnames, original IPs, tags. */
  private directory: () => readonly DirectoryEntry[] = () => [];
  /** The DATA frames of one relay socket batch, as views of its slab (sources: overlay addresses). */
  private relayMessages: DatagramBatch = newMessageBatch(IDEAL_BATCH_SIZE);

  constructor(private readonly config: AgentConfig, private readonly c: AgentComponents, private readonly opts: AgentOptions = {}) {
    this.timerConfig = { ...DEFAULT_TIMER_CONFIG, ...opts.timers };
    this.local = createLocalIdentity(keyFromBase64(config.privateKey));
    this.overlayAddress = config.address.addr;
    this.peers = new PeerSet(this.local, c.clock, this.timerConfig, (p) => this.device.forgetPeer(p));
    this.prober = new Prober({
      clock: c.clock, peers: this.peers, localVip: this.overlayAddress,
      sendInside: (buf, off, len) => this.injectInside(buf, off, len),
      relay: () => this.relay && {
        address: `${formatAddr(this.relayIp)}:${this.relayPort}`, relayId: this.relay.relayId, ready: this.relay.isReady,
        state: this.relay.state, rebinds: this.relayRebinds,
      },
      directory: () => this.directory(),
    });
    const outside: OutsideSender = {
      send: (ep, buf, off, len) => this.sendOutside(ep, buf, off, len, false),
      // flushAll() runs before the slab of the batch being processed is reused.
      sendInPlace: (ep, buf, off, len) => this.sendOutside(ep, buf, off, len, true),
    };
    this.device = new Device({
      clock: c.clock, logger: c.logger, outside, peers: this.peers, local: this.local, timerConfig: this.timerConfig,
      inside: {
        write: (buf, off, len) => this.writeInside(buf, off, len, false),
        writeInPlace: (buf, off, len) => this.writeInside(buf, off, len, true),
      },
      aead: c.aead === null ? nodeCryptoAead : (c.aead ?? (nativeAvailable() ? nativeAead : nodeCryptoAead)),
      localAddresses: [config.address.addr, ...(opts.localAddresses ?? [])],
      probes: this.prober,
    });
  }

  /** Where the peer map's entries come from (joined agents); status and ping name peers by them. */
  setDirectory(directory: () => readonly DirectoryEntry[]): void {
    this.directory = directory;
  }

  /** `isthmus ping`: probe a peer `req.count` times; true when every probe was answered and allowed. */
  ping(req: PingRequest, emit: (r: ProbeResult) => void, signal?: AbortSignal): Promise<boolean> {
    return this.prober.ping(req, emit, signal);
  }

  /** One plaintext packet into the inside path, as if the TUN had read it (probes). */
  private injectInside(buf: Buffer, off: number, len: number): void {
    if (!this.tun) return;
    this.device.readInsidePackets({ count: 1, data: buf, offsets: Uint32Array.of(off), lengths: Uint32Array.of(len) }, this.tun.mtu);
    this.flushAll();
  }

  get publicKey(): string {
    return keyToBase64(this.local.publicKey);
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const log = this.c.logger;
    for (const p of cfg.peers) {
      let endpoint: Endpoint | undefined;
      if (p.endpoint === 'relay') endpoint = Endpoint.relay(parseAddr(p.overlayIp!));
      else if (p.endpoint) endpoint = Endpoint.direct(await resolveIpv4(p.endpoint.host), p.endpoint.port);
      this.upsertPeer({
        publicKey: p.publicKey, allowedIps: p.allowedIps, endpoint, presharedKey: p.presharedKey, persistentKeepaliveSec: p.persistentKeepaliveSec,
        inbound: compileInbound(p.inbound), // no `Inbound =`: `*`, a plain WireGuard peer as before
      });
    }
    this.socket = this.c.openUdpSocket({ host: cfg.listenAddress ?? '0.0.0.0', port: cfg.listenPort ?? 0 });
    this.socket.onReceive((b) => this.onOutsideBatch(b));
    this.tun = this.c.openTun({ name: cfg.name, mtu: cfg.mtu, address: formatPrefix(cfg.address), headroom: DEVICE_HEADROOM, tailroom: DEVICE_TAILROOM, offload: this.opts.tunOffload ?? true });
    this.tun.onReceive((b) => this.onInsideBatch(b));
    await this.routeOriginalPrefixes();
    log.info({ tun: this.tun.name, tunOffload: this.tun.offload ?? false, vip: formatAddr(cfg.address.addr), prefix: formatPrefix(masked(cfg.address)), udpAddr: `${this.socket.localAddress.ip}:${this.socket.localAddress.port}`, peers: this.peers.size }, 'agent started');
    if (cfg.relay) {
      this.relayIp = await resolveIpv4(cfg.relay.host);
      this.relayPort = cfg.relay.port;
      this.connectRelay();
    }
    this.ticker = setInterval(() => {
      this.device.tick();
      this.flushAll();
    }, TICK_MS);
  }

  /** Transparent mode: send the chosen original prefixes into the TUN. Never the relay's own
   *  address: its packets would loop into the overlay they carry. */
  private async routeOriginalPrefixes(): Promise<void> {
    const prefixes = this.opts.routeOriginal ?? [];
    if (prefixes.length === 0) return;
    if (!this.c.addRoute) throw new Error('this platform cannot add routes for --route-original');
    if (this.config.relay) {
      const relayIp = await resolveIpv4(this.config.relay.host);
      const clash = prefixes.find((c) => contains(c, relayIp));
      if (clash) throw new Error(`--route-original ${formatPrefix(masked(clash))} contains the relay address ${formatAddr(relayIp)}`);
    }
    for (const c of prefixes) await this.c.addRoute(formatPrefix(masked(c)), this.tun!.name);
    this.c.logger.info({ prefixes: prefixes.map((c) => formatPrefix(masked(c))), tun: this.tun!.name }, 'transparent mode: original prefixes routed into the overlay');
  }

  /** Open a fresh relay socket and authenticate on it (start, and failover after the relay died). */
  private connectRelay(): void {
    const log = this.c.logger;
    this.relay?.stop();
    this.relaySocket?.close();
    const socket = this.c.openUdpSocket({ host: this.config.listenAddress ?? '0.0.0.0', port: 0 });
    socket.onReceive((b) => this.onRelayBatch(b));
    const relay = new RelayClient({
      staticPrivate: this.local.privateKey, staticPublic: this.local.publicKey, relayAddr: this.relayIp, relayPort: this.relayPort,
      vip: this.overlayAddress, socket, clock: this.c.clock, logger: log,
      // Failover budget: with traffic in flight a dead relay is noticed 0.9-1.1 s after it was
      // last heard (probe after 0.3 s of silence, 3 probes 0.2 s apart), a dead VIP backend
      // after 3 unanswered HELLOs (~1.4 s), so a TCP flow's stall stays under its 4th
      // retransmission (~3 s). An idle member costs one PING per 10 s.
      ...RELAY_FAILOVER_TIMING,
      ...(this.opts.relayKeepaliveMs ? { keepaliveMs: this.opts.relayKeepaliveMs } : {}),
    });
    // Packets that queued while the relay session was down need not wait for the 5 s retry.
    relay.on('ready', () => this.device.retryPendingHandshakes());
    relay.on('unreachable', (vip) => this.prober.onUnreachable(vip));
    relay.on('relay-dead', () => {
      this.relayRebinds++;
      log.warn({ relay: `${formatAddr(this.relayIp)}:${this.relayPort}`, rebinds: this.relayRebinds }, 'relay not answering: rebinding on a new source port');
      this.connectRelay();
    });
    this.relaySocket = socket;
    this.relay = relay;
    relay.start();
  }

  upsertPeer(spec: PeerSpec): void {
    this.peers.upsert(spec);
  }

  removePeer(publicKeyBase64: string): void {
    this.peers.remove(publicKeyBase64);
  }

  peerKeys(): string[] {
    return [...this.peers.all()].map((p) => p.publicKeyBase64);
  }

  private writeInside(buf: Uint8Array, off: number, len: number, inPlace: boolean): void {
    const tun = this.tun;
    if (!tun) return;
    if (inPlace) tun.writeInPlace(buf, off, len);
    else tun.write(buf, off, len);
  }

  private sendOutside(ep: Endpoint, buf: Uint8Array, off: number, len: number, inPlace: boolean): void {
    if (ep.kind === EndpointKind.Direct) {
      const s = this.socket;
      if (!s) return;
      if (inPlace) s.sendInPlace(buf, off, len, ep.ip, ep.port);
      else s.send(buf, off, len, ep.ip, ep.port);
      return;
    }
    const relay = this.relay;
    const socket = this.relaySocket;
    if (!relay || !socket) return;
    if (off >= RELAY_HEADER_LEN) {
      relay.writeDataHeader(buf, off - RELAY_HEADER_LEN, ep.vip);
      if (inPlace) socket.sendInPlace(buf, off - RELAY_HEADER_LEN, len + RELAY_HEADER_LEN, this.relayIp, this.relayPort);
      else socket.send(buf, off - RELAY_HEADER_LEN, len + RELAY_HEADER_LEN, this.relayIp, this.relayPort);
    } else {
      relay.writeDataHeader(this.relayScratch, 0, ep.vip);
      this.relayScratch.set(buf.subarray(off, off + len), RELAY_HEADER_LEN);
      socket.send(this.relayScratch, 0, len + RELAY_HEADER_LEN, this.relayIp, this.relayPort);
    }
  }

  private onOutsideBatch(b: DatagramBatch): void {
    this.device.readOutsidePackets(b, EndpointKind.Direct);
    this.flushAll();
  }

  /** Datagrams on the relay socket: only the relay's own frames count; control frames are
   *  handled by the relay client, DATA frames' WireGuard messages go to the engine as one batch. */
  private onRelayBatch(b: DatagramBatch): void {
    const relay = this.relay;
    if (!relay) return;
    if (this.relayMessages.offsets.length < b.count) this.relayMessages = newMessageBatch(b.count);
    const m = this.relayMessages;
    m.data = b.data;
    let n = 0;
    for (let i = 0; i < b.count; i++) {
      if (b.addrs[i] !== this.relayIp || b.ports[i] !== this.relayPort) continue;
      const frame = relay.handleFrame(b.data, b.offsets[i], b.lengths[i]);
      if (!frame) continue;
      m.offsets[n] = frame.offset;
      m.lengths[n] = frame.length;
      m.addrs[n] = frame.srcVip;
      n++;
    }
    m.count = n;
    if (n > 0) this.device.readOutsidePackets(m, EndpointKind.Relay);
    m.data = EMPTY;
    this.flushAll();
  }

  private onInsideBatch(b: PacketBatch): void {
    const tun = this.tun;
    if (!tun) return;
    this.device.readInsidePackets(b, tun.mtu);
    this.flushAll();
  }

  /** One flush per side per processed batch (sendmmsg / TUN writes). */
  private flushAll(): void {
    this.tun?.flush();
    this.socket?.flush();
    this.relaySocket?.flush();
  }

  /** The relay session's client (state and counters, for metrics), undefined without a relay. */
  get relayClient(): RelayClient | undefined {
    return this.relay;
  }

  status(): object {
    return {
      publicKey: this.publicKey,
      vip: formatAddr(this.overlayAddress),
      tun: this.tun?.name,
      tunOffload: this.tun?.offload ? { on: true, ...this.tun.offloadStats?.() } : { on: false },
      listen: this.socket?.localAddress,
      relay: this.relay ? { address: `${formatAddr(this.relayIp)}:${this.relayPort}`, relayId: this.relay.relayId, ready: this.relay.isReady, rebinds: this.relayRebinds, udpAddr: this.relaySocket?.localAddress } : undefined,
      drops: this.device.drops,
      flows: this.flowStatus(),
      peers: [...this.peers.all()].map((p) => ({
        ...this.describePeer(p.publicKeyBase64),
        publicKey: p.publicKeyBase64,
        allowedIps: p.allowedIps.map((c) => formatPrefix(masked(c))),
        inbound: describeInbound(p.inbound),
        endpoint: p.endpoint ? (p.endpoint.kind === EndpointKind.Relay ? `relay:${formatAddr(p.endpoint.vip)}` : `${formatAddr(p.endpoint.ip)}:${p.endpoint.port}`) : undefined,
        ...p.stats,
      })),
    };
  }

  /** What the peer map says of a peer: hostname, original IP, tags (joined agents). */
  private describePeer(publicKey: string): { vip?: string; hostname?: string; originalIp?: string; tags?: string[] } {
    const e = this.directory().find((d) => d.publicKey === publicKey);
    return e ? { vip: e.vip, hostname: e.hostname, originalIp: e.originalIp, tags: e.tags } : {};
  }

  /** The inbound filter's reply table: flows we opened that are alive, its size, evictions. */
  private flowStatus(): { tracked: number; capacity: number; evictions: number; localAddresses: string[] } {
    const f = this.device.filter;
    return {
      tracked: f.table.size(this.c.clock.now()), capacity: f.table.capacity, evictions: f.table.evictions,
      localAddresses: f.localAddresses().map(formatAddr),
    };
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    this.relay?.stop();
    this.tun?.close();
    this.socket?.close();
    this.relaySocket?.close();
    this.tun = undefined;
    this.socket = undefined;
    this.relaySocket = undefined;
    this.relay = undefined;
  }
}
