/**
 * `isthmus agent`: wires the session engine (device.ts) to a TUN device (inside) and a UDP
 * socket (outside), plus the relay client when peers are reached through a relay.
 *
 *   TUN batch ─► Device.receiveInside ─► OutsideSender ─► socket.send (direct, or relay frame)
 *   UDP batch ─► relay frame? RelayClient.handleFrame ─► Device.receiveOutside ─► tun.write
 *
 * One flush of each side per processed batch.
 */
import { lookup } from 'node:dns/promises';
import type { Clock } from '../common/clock';
import type { Logger } from '../common/logger';
import { ipv4ToInt, intToIpv4, type DatagramSocket, type DatagramBatch, type PacketBatch, type TunDevice } from '../common/packet-io';
import { createLocalIdentity, type LocalIdentity } from '../protocol/handshake';
import { keyFromBase64, keyToBase64 } from '../protocol/keys';
import { DEFAULT_TIMER_CONFIG, type TimerConfig } from '../protocol/timers';
import { RELAY_HEADER_LEN } from '../protocol/relay-frame';
import { RelayClient } from './relay-client';
import { Device, DEVICE_HEADROOM, DEVICE_TAILROOM } from './device';
import { Endpoint, EndpointKind, type OutsideSender } from './endpoint';
import { PeerSet, type PeerSpec } from './peer-set';
import type { AgentConfig } from './config';
import { formatCidr } from './cidr';

/** How often the engine's timers run. WireGuard's timers have a granularity of seconds. */
const TICK_MS = 100;

export interface AgentComponents {
  clock: Clock;
  logger: Logger;
  openTun(opts: { name?: string; mtu: number; address: string; headroom: number; tailroom: number }): TunDevice;
  openUdpSocket(opts: { host: string; port: number }): DatagramSocket;
}

export interface AgentOptions {
  /** Timer durations; tests shorten REKEY_AFTER_TIME to watch a real rekey. @default spec values */
  timers?: Partial<TimerConfig>;
}

async function resolveIpv4(host: string): Promise<number> {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return ipv4ToInt(host);
  const r = await lookup(host, { family: 4 });
  return ipv4ToInt(r.address);
}

export class Agent {
  readonly local: LocalIdentity;
  readonly peers: PeerSet;
  readonly device: Device;
  readonly overlayAddress: number;
  private tun: TunDevice | undefined;
  private socket: DatagramSocket | undefined;
  private relay: RelayClient | undefined;
  private relayIp = 0;
  private relayPort = 0;
  private ticker: NodeJS.Timeout | undefined;
  private readonly timerConfig: TimerConfig;
  private readonly relayScratch = Buffer.alloc(RELAY_HEADER_LEN + 65536);

  constructor(private readonly config: AgentConfig, private readonly c: AgentComponents, opts: AgentOptions = {}) {
    this.timerConfig = { ...DEFAULT_TIMER_CONFIG, ...opts.timers };
    this.local = createLocalIdentity(keyFromBase64(config.privateKey));
    this.overlayAddress = ipv4ToInt(config.address.address);
    this.peers = new PeerSet(this.local, c.clock, this.timerConfig, (p) => this.device.forgetPeer(p));
    const outside: OutsideSender = { send: (ep, buf, off, len) => this.sendOutside(ep, buf, off, len) };
    this.device = new Device({
      clock: c.clock, logger: c.logger, outside, peers: this.peers, local: this.local, timerConfig: this.timerConfig,
      inside: { write: (buf, off, len) => this.tun?.write(buf, off, len) },
    });
  }

  get publicKey(): string {
    return keyToBase64(this.local.publicKey);
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const log = this.c.logger;
    for (const p of cfg.peers) {
      let endpoint: Endpoint | undefined;
      if (p.endpoint === 'relay') endpoint = Endpoint.relay(ipv4ToInt(p.overlayIp!));
      else if (p.endpoint) endpoint = Endpoint.direct(await resolveIpv4(p.endpoint.host), p.endpoint.port);
      this.upsertPeer({ publicKey: p.publicKey, allowedIps: p.allowedIps, endpoint, presharedKey: p.presharedKey, persistentKeepaliveSec: p.persistentKeepaliveSec });
    }
    this.socket = this.c.openUdpSocket({ host: cfg.listenAddress ?? '0.0.0.0', port: cfg.listenPort ?? 0 });
    this.socket.onReceive((b) => this.onOutsideBatch(b));
    this.tun = this.c.openTun({ name: cfg.name, mtu: cfg.mtu, address: `${cfg.address.address}/${cfg.address.bits}`, headroom: DEVICE_HEADROOM, tailroom: DEVICE_TAILROOM });
    this.tun.onReceive((b) => this.onInsideBatch(b));
    log.info({ tun: this.tun.name, vip: cfg.address.address, prefix: formatCidr(cfg.address), udpAddr: `${this.socket.localAddress.ip}:${this.socket.localAddress.port}`, peers: this.peers.size }, 'agent started');
    if (cfg.relay) {
      this.relayIp = await resolveIpv4(cfg.relay.host);
      this.relayPort = cfg.relay.port;
      this.relay = new RelayClient({
        staticPrivate: this.local.privateKey, staticPublic: this.local.publicKey, relayAddr: this.relayIp, relayPort: this.relayPort,
        vip: this.overlayAddress, socket: this.socket, clock: this.c.clock, logger: log,
      });
      // Packets that queued while the relay session was down need not wait for the 5 s retry.
      this.relay.on('ready', () => this.device.retryPendingHandshakes());
      this.relay.start();
    }
    this.ticker = setInterval(() => this.device.tick(), TICK_MS);
  }

  upsertPeer(spec: PeerSpec): void {
    this.peers.upsert(spec);
  }

  removePeer(publicKeyBase64: string): void {
    this.peers.remove(publicKeyBase64);
  }

  private sendOutside(ep: Endpoint, buf: Buffer, off: number, len: number): void {
    const socket = this.socket;
    if (!socket) return;
    if (ep.kind === EndpointKind.Direct) {
      socket.send(buf, off, len, ep.ip, ep.port);
      return;
    }
    const relay = this.relay;
    if (!relay) return;
    if (off >= RELAY_HEADER_LEN) {
      relay.writeDataHeader(buf, off - RELAY_HEADER_LEN, ep.vip);
      socket.send(buf, off - RELAY_HEADER_LEN, len + RELAY_HEADER_LEN, this.relayIp, this.relayPort);
    } else {
      relay.writeDataHeader(this.relayScratch, 0, ep.vip);
      buf.copy(this.relayScratch, RELAY_HEADER_LEN, off, off + len);
      socket.send(this.relayScratch, 0, len + RELAY_HEADER_LEN, this.relayIp, this.relayPort);
    }
  }

  private onOutsideBatch(b: DatagramBatch): void {
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i];
      const len = b.lengths[i];
      if (this.relay && b.addrs[i] === this.relayIp && b.ports[i] === this.relayPort) {
        const frame = this.relay.handleFrame(b.data, off, len);
        if (frame) this.device.receiveOutside(b.data, frame.offset, frame.length, EndpointKind.Relay, 0, 0, frame.srcVip);
      } else {
        this.device.receiveOutside(b.data, off, len, EndpointKind.Direct, b.addrs[i], b.ports[i], 0);
      }
    }
    this.tun?.flush();
    this.socket?.flush();
  }

  private onInsideBatch(b: PacketBatch): void {
    for (let i = 0; i < b.count; i++) this.device.receiveInside(b.data, b.offsets[i], b.lengths[i]);
    this.socket?.flush();
  }

  status(): object {
    return {
      publicKey: this.publicKey,
      vip: intToIpv4(this.overlayAddress),
      tun: this.tun?.name,
      listen: this.socket?.localAddress,
      relay: this.relay ? { address: `${intToIpv4(this.relayIp)}:${this.relayPort}`, ready: this.relay.isReady } : undefined,
      drops: this.device.drops,
      peers: [...this.peers.all()].map((p) => ({
        publicKey: p.publicKeyBase64,
        allowedIps: p.allowedIps.map(formatCidr),
        endpoint: p.endpoint ? (p.endpoint.kind === EndpointKind.Relay ? `relay:${intToIpv4(p.endpoint.vip)}` : `${intToIpv4(p.endpoint.ip)}:${p.endpoint.port}`) : undefined,
        ...p.stats,
      })),
    };
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    this.relay?.stop();
    this.tun?.close();
    this.socket?.close();
    this.tun = undefined;
    this.socket = undefined;
  }
}
