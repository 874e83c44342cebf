/**
 * A whole overlay in one process, without root (after hyperdht's testnet.js and nebula's
 * e2e router): real relays (relay/) and real Agents (node-agent/agent.ts, composed through
 * AgentComponents as `isthmus agent` does) on memory TUNs and a memory UDP network.
 *
 *   agent a (10.1.0.1) ─┐                        ┌─ relay r1 10.90.0.1:7000 ─┐
 *   agent b (10.1.0.2) ─┼─ VIP 10.90.0.100:7000 ─┤                           ├─ mesh (:7001)
 *   agent c (10.1.0.3) ─┘   (round-robin DNAT)   └─ relay r2 10.90.0.2:7000 ─┘
 *
 * With one relay there is no VIP: agents talk to r1 directly. With more, a MemoryNetwork
 * balancer stands in for the VIP and the relays mesh through a MemoryMeshRegistry (what
 * Redis holds in production). Peers are configured statically, every agent with every other
 * through the relay; the relays know the members from a StaticMemberDirectory. Policy comes
 * in as the coordinator hands it out: per receiver and peer, the `inbound` port specs
 * (`inbound`, changed at run time with setInbound).
 *
 * With `tags` or `policy`, every relay enforces the access policy from one MemoryPolicySource
 * (`testnet.policy`, what `P:policy` and the node records are in Redis).
 *
 * Timers are real, with the agent's own failover timing (RELAY_FAILOVER_TIMING); the relays
 * advertise a 1 s keepalive, so an idle member notices a dead relay within 1.7 s and one with
 * traffic in flight within about 1 s.
 */
import { systemClock } from '../../common/clock';
import { silentLogger } from '../../common/logger';
import { parseAddr, parseNetwork, parsePrefix } from '../../common/ipv4';
import { createRelay, StaticMemberDirectory, type Relay } from '../../relay';
import { Mesh } from '../../relay/mesh';
import { deriveMeshKey } from '../../relay/mesh-frame';
import { Agent, type AgentComponents } from '../../node-agent/agent';
import type { AgentConfig } from '../../node-agent/config';
import { peerSpecFromEntry } from '../../node-agent/membership';
import { generatePrivateKey, keyToBase64, publicKeyFromPrivate } from '../../protocol/keys';
import type { TimerConfig } from '../../protocol/timers';
import { MemoryNetwork, type MemoryDatagramSocket } from './memory-bind';
import { MemoryMeshRegistry } from './memory-mesh-registry';
import { MemoryPolicySource } from './memory-policy-source';
import { MemoryTun } from './memory-tun';

export const RELAY_PORT = 7000;
export const MESH_PORT = 7001;
export const VIP_ADDRESS = { ip: '10.90.0.100', port: RELAY_PORT };

export interface TestnetOptions {
  /** Member names; agent i gets overlay address 100.64.0.(i+1) on host 10.1.0.(i+1). @default ['a', 'b'] */
  agents?: string[];
  /** Relays behind the VIP; more than one makes a meshed cluster. @default 1 */
  relays?: number;
  /** Agent → relay idle keepalive, ms (the relays advertise 1 s, which wins when shorter). @default the agent's */
  relayKeepaliveMs?: number;
  /** The data path's AEAD: the native batched one (when built), or node:crypto per packet. @default the agent's default */
  aead?: 'default' | 'node';
  /** Extra prefixes member `name` owns besides its overlay address (its peers' AllowedIPs). */
  extraAllowedIps?: Record<string, string[]>;
  /** @default 1420 */
  mtu?: number;
  /** WireGuard timer durations, e.g. a short rekeyTimeoutMs to watch a retry. @default spec values */
  timers?: Partial<TimerConfig>;
  /** Member tags by name (the node records' `tags`); with this or `policy` the relays enforce a policy. */
  tags?: Record<string, string[]>;
  /** The access policy text (`P:policy`); null or absent: none. */
  policy?: string | null;
  /** Which relays (0-based) get the policy source; the others forward between anyone, like a
   *  relay that predates policies or one that does not check. @default every relay */
  policyRelays?: number[];
  /**
   * Policy as the coordinator hands it out: `inbound[receiver][peer]` is what `peer` may open
   * towards `receiver` (port specs as peer maps carry them: `tcp/22`, `udp/53`, `icmp`, `*`;
   * `[]` for nothing). A pair not listed gets no field, which agents read as `*`.
   */
  inbound?: Record<string, Record<string, string[]>>;
  /** Addresses member `name` owns besides its overlay address (its original IP in transparent mode). */
  ownAddresses?: Record<string, string[]>;
}

export interface TestAgent {
  name: string;
  /** Overlay address, dotted. */
  vip: string;
  /** The host the agent runs on (its sockets' address). */
  host: string;
  publicKey: string;
  agent: Agent;
  /** The agent's TUN (opened by agent.start()). */
  tun: MemoryTun;
  /** The network it is on. */
  net: MemoryNetwork;
}

export interface TestRelay {
  id: string;
  host: string;
  relay: Relay;
  socket: MemoryDatagramSocket;
  mesh?: Mesh;
  meshSocket?: MemoryDatagramSocket;
}

const MESH_SECRET = Buffer.from('testnet mesh secret, not a real one');

export class Testnet {
  readonly net = new MemoryNetwork();
  readonly registry = new MemoryMeshRegistry();
  /** The relays' policy and tags, when the options asked for them. */
  readonly policy: MemoryPolicySource | undefined;
  readonly relays: TestRelay[] = [];
  readonly agents: TestAgent[] = [];
  /** Where agents send relay traffic: the VIP, or the lone relay. */
  readonly relayAddress: { ip: string; port: number };
  private readonly directory: StaticMemberDirectory;
  private readonly keys: { name: string; priv: Buffer; pub: string; vip: string; host: string }[];

  constructor(private readonly o: TestnetOptions = {}) {
    const names = o.agents ?? ['a', 'b'];
    this.keys = names.map((name, i) => {
      const priv = generatePrivateKey();
      return { name, priv, pub: keyToBase64(publicKeyFromPrivate(priv)), vip: `100.64.0.${i + 1}`, host: `10.1.0.${i + 1}` };
    });
    if (o.tags !== undefined || o.policy !== undefined) {
      const p = new MemoryPolicySource();
      for (const k of this.keys) p.setTags(k.vip, o.tags?.[k.name] ?? [], true);
      if (o.policy) p.setPolicy(o.policy);
      this.policy = p;
    }
    this.directory = new StaticMemberDirectory(this.keys.map((k) => ({ publicKey: k.pub, vip: parseAddr(k.vip) })));
    const n = o.relays ?? 1;
    this.relayAddress = n > 1 ? VIP_ADDRESS : { ip: relayHost(0), port: RELAY_PORT };
    if (n > 1) {
      this.net.addBalancer(VIP_ADDRESS, Array.from({ length: n }, (_, i) => ({ ip: relayHost(i), port: RELAY_PORT })));
    }
  }

  /** Start the relays, then the agents one by one (so the VIP's round-robin places agent i on relay i mod n). */
  async start(): Promise<this> {
    const n = this.o.relays ?? 1;
    for (let i = 0; i < n; i++) this.relays.push(this.startRelay(i));
    for (const r of this.relays) await r.relay.policyReady();
    for (const k of this.keys) this.agents.push(await this.startAgent(k));
    return this;
  }

  private startRelay(i: number): TestRelay {
    const id = `r${i + 1}`;
    const host = relayHost(i);
    const logger = silentLogger();
    const socket = this.net.bind(host, RELAY_PORT);
    let mesh: Mesh | undefined;
    let meshSocket: MemoryDatagramSocket | undefined;
    const meshed = (this.o.relays ?? 1) > 1;
    if (meshed) {
      meshSocket = this.net.bind(host, MESH_PORT);
      this.registry.register(id, { addr: parseAddr(host), port: MESH_PORT });
      mesh = new Mesh({ relayId: id, key: deriveMeshKey(MESH_SECRET), helloRetryMs: 50 }, { logger, clock: systemClock, socket: meshSocket, routes: this.registry });
    }
    const relay = createRelay({ id, keepaliveSeconds: 1, tickMs: 100, replyIntervalMs: 100 })({
      logger, clock: systemClock, socket, directory: this.directory, mesh,
      policy: this.o.policyRelays === undefined || this.o.policyRelays.includes(i) ? this.policy : undefined,
      sessionListener: meshed ? this.registry.recorder(id) : undefined,
    });
    relay.start();
    return { id, host, relay, socket, mesh, meshSocket };
  }

  private async startAgent(k: Testnet['keys'][number]): Promise<TestAgent> {
    const extra = this.o.extraAllowedIps ?? {};
    const config: AgentConfig = {
      privateKey: keyToBase64(k.priv), address: parsePrefix(`${k.vip}/10`), mtu: this.o.mtu ?? 1420, name: `tun-${k.name}`,
      relay: { host: this.relayAddress.ip, port: this.relayAddress.port },
      peers: this.keys.filter((p) => p !== k).map((p) => ({
        publicKey: p.pub, endpoint: 'relay' as const, overlayIp: p.vip,
        allowedIps: [p.vip + '/32', ...(extra[p.name] ?? [])].map((s) => parseNetwork(s)),
        inbound: this.o.inbound?.[k.name]?.[p.name],
      })),
    };
    let tun: MemoryTun | undefined;
    const components: AgentComponents = {
      clock: systemClock, logger: silentLogger(),
      openTun: (t) => (tun = new MemoryTun({ name: t.name, mtu: t.mtu, headroom: t.headroom, tailroom: t.tailroom })),
      openUdpSocket: (s) => this.net.bind(s.host === '0.0.0.0' ? k.host : s.host, s.port),
      ...(this.o.aead === 'node' ? { aead: null } : {}),
    };
    const agent = new Agent(config, components, {
      relayKeepaliveMs: this.o.relayKeepaliveMs, timers: this.o.timers,
      localAddresses: (this.o.ownAddresses?.[k.name] ?? []).map(parseAddr),
    });
    await agent.start();
    return { name: k.name, vip: k.vip, host: k.host, publicKey: k.pub, agent, tun: tun!, net: this.net };
  }

  /**
   * The coordinator changed what `peer` may open towards `receiver` (a policy change): the
   * receiver gets a new peer-map entry for `peer` and applies it as `isthmus agent` does
   * (peerSpecFromEntry). `undefined` sends an entry without the field (an older coordinator).
   */
  setInbound(receiver: string, peer: string, inbound: string[] | undefined): void {
    const p = this.agent(peer);
    const spec = peerSpecFromEntry({ vip: p.vip, originalIp: p.vip, publicKey: p.publicKey, hostname: p.name, tags: [], inbound });
    const extra = (this.o.extraAllowedIps?.[peer] ?? []).map((s) => parseNetwork(s));
    this.agent(receiver).agent.upsertPeer({ ...spec, allowedIps: [...spec.allowedIps, ...extra] });
  }

  /** Handshakes `name` completed with `peer` so far. */
  handshakes(name: string, peer: string): number {
    return this.agent(name).agent.peers.get(this.agent(peer).publicKey)?.stats.handshakes ?? 0;
  }

  agent(name: string): TestAgent {
    const a = this.agents.find((x) => x.name === name);
    if (!a) throw new Error(`no agent ${name}`);
    return a;
  }

  /** The relay that has `name` bound right now (undefined while it is between relays). */
  homeOf(name: string): TestRelay | undefined {
    const vip = this.agent(name).vip;
    return this.relays.find((r) => !this.net.isHostDown(r.host) && r.relay.sessions().some((s) => s.vip === vip));
  }

  /** Resolves when every agent is bound at a live relay and its relay client is ready. */
  async ready(timeoutMs = 3000): Promise<void> {
    await waitFor(() => this.agents.every((a) => {
      const st = a.agent.status() as { relay?: { ready: boolean } };
      return st.relay?.ready === true && this.homeOf(a.name) !== undefined;
    }), { timeoutMs, what: 'every agent bound at a relay' });
  }

  /** The relay dies: its host goes down (nothing in or out), its process is left as it was. */
  killRelay(r: TestRelay): void {
    this.net.setHostDown(r.host, true);
  }

  /** The relay process restarts on the same address: a fresh instance that knows no session. */
  restartRelay(r: TestRelay): void {
    const i = this.relays.indexOf(r);
    r.relay.stop();
    r.socket.close();
    r.meshSocket?.close();
    this.relays[i] = this.startRelay(i);
  }

  async stop(): Promise<void> {
    for (const a of this.agents) await a.agent.stop();
    for (const r of this.relays) {
      r.relay.stop();
      r.socket.close();
      r.meshSocket?.close();
    }
    await this.net.idle();
  }
}

function relayHost(i: number): string {
  return `10.90.0.${i + 1}`;
}

/** Start a testnet (see TestnetOptions). */
export function startTestnet(o: TestnetOptions = {}): Promise<Testnet> {
  return new Testnet(o).start();
}

/** Poll `cond` every `intervalMs` until it holds; reject after `timeoutMs` naming `what`. */
export async function waitFor(cond: () => boolean, o: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 3000;
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${o.what ?? 'a condition'}`);
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 10));
  }
}
