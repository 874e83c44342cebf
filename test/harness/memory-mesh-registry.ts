/**
 * The relay mesh's Redis side in memory, for in-process clusters (testnet.ts): which relay
 * is each member's home (`P:session:<vip>`.relayId), each relay's mesh address
 * (`P:relay:<id>`), and the session-up/down events (pub/sub), delivered asynchronously as
 * pub/sub would. It plays both roles RedisMeshRegistry and RedisSessionRecorder play: the
 * mesh's MeshRouteSource and every relay's SessionListener (`recorder(relayId)`).
 */
import type { MeshHome, MeshRouteSource, MeshSessionEvent } from '../../relay/mesh';
import type { SessionListener } from '../../relay/control';
import type { Session } from '../../relay/session-table';

export class MemoryMeshRegistry implements MeshRouteSource {
  private readonly homes = new Map<number, string>();
  private readonly meshAddrs = new Map<string, { addr: number; port: number }>();
  private readonly listeners: ((e: MeshSessionEvent | undefined) => void)[] = [];

  /** A relay joins the cluster with its mesh address (`P:relay:<id>`). */
  register(relayId: string, mesh: { addr: number; port: number }): void {
    this.meshAddrs.set(relayId, mesh);
  }

  /** The relay currently recorded as `vip`'s home. */
  homeOf(vip: number): string | undefined {
    return this.homes.get(vip >>> 0);
  }

  async lookupHome(vip: number, selfId: string): Promise<MeshHome | undefined> {
    const id = this.homes.get(vip >>> 0);
    if (id === undefined || id === selfId) return undefined;
    const m = this.meshAddrs.get(id);
    return m ? { relayId: id, addr: m.addr, port: m.port } : undefined;
  }

  onEvent(listener: (e: MeshSessionEvent | undefined) => void): void {
    this.listeners.push(listener);
  }

  /** What relay `relayId` records on bind and unbind, like RedisSessionRecorder. */
  recorder(relayId: string): SessionListener {
    return {
      sessionUp: (s: Session) => {
        this.homes.set(s.vip >>> 0, relayId);
        this.publish({ type: 'session-up', vip: s.vip >>> 0, relayId, mesh: this.meshAddrs.get(relayId) });
      },
      sessionDown: (s: Session, why) => {
        // A replaced binding is followed by sessionUp; a member that moved on is not ours to delete.
        if (why === 'replaced' || this.homes.get(s.vip >>> 0) !== relayId) return;
        this.homes.delete(s.vip >>> 0);
        this.publish({ type: 'session-down', vip: s.vip >>> 0, relayId, mesh: this.meshAddrs.get(relayId) });
      },
    };
  }

  private publish(e: MeshSessionEvent): void {
    queueMicrotask(() => {
      for (const l of this.listeners) l(e);
    });
  }
}
