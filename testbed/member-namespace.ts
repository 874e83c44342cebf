/**
 * Extra member hosts on the shared topology, each in its own VPC namespace that reaches
 * only the hub (like vpc1/vpc2):
 *
 *   <p>-m<i>  eth0 10.95.<i>.2/24 ──veth── <p>-hub  to-m<i> 10.95.<i>.1/24   (only a route to the VIP, via .1)
 *
 * The hub's nft forward policy (drop) keeps them isolated from every other VPC. On a topology
 * with relays (`relays: N`), the hub forwards m<i> ↔ relays only, as it does for vpc1/vpc2, so
 * the VIP's DNAT reaches the relays and coordinators behind it.
 */
import type { Topology } from './topology';
import { run } from './procs';

export interface MemberNamespace {
  ns: string;
  addr: string;
  remove(): Promise<void>;
}

export async function addMemberNamespace(topo: Topology, i: number): Promise<MemberNamespace> {
  if (!(i >= 1 && i <= 200)) throw new Error(`member namespace index ${i} out of range 1-200`);
  const ns = `${topo.prefix}-m${i}`;
  const hubIf = `to-m${i}`;
  const addr = `10.95.${i}.2`;
  await run('ip', ['netns', 'add', ns]);
  let undoForward: (() => Promise<void>) | undefined;
  const remove = async () => {
    await undoForward?.().catch(() => undefined);
    undoForward = undefined;
    await run('ip', ['netns', 'del', ns], { check: false });
  };
  try {
    await run('ip', ['link', 'add', hubIf, 'netns', topo.ns.hub, 'mtu', String(topo.mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns, 'mtu', String(topo.mtu)]);
    await topo.exec(topo.ns.hub, 'ip', ['addr', 'add', `10.95.${i}.1/24`, 'dev', hubIf]);
    await topo.exec(topo.ns.hub, 'ip', ['link', 'set', hubIf, 'up']);
    await topo.exec(ns, 'ip', ['link', 'set', 'lo', 'up']);
    await topo.exec(ns, 'ip', ['addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    await topo.exec(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    await topo.exec(ns, 'ip', ['route', 'add', `${topo.addr.vip}/32`, 'via', `10.95.${i}.1`]);
    if (topo.ns.relays.length > 0) undoForward = await topo.allowHubForward(hubIf, 'to-r*');
  } catch (err) {
    await remove();
    throw err;
  }
  return { ns, addr, remove };
}
