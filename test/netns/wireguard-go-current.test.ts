/**
 * The bench subject `wireguard-go-current` (today's upstream wireguard-go, static build in
 * ../shared/peers or $ISTHMUS_WG_GO_CURRENT): it is found from the checkout, it carries vpc1 → vpc2
 * through the hub while the hub still refuses to forward between the veths, the daemons are that
 * binary, and its TUN really has segmentation offload on (where Debian's wireguard-go has it off).
 * Root only; skipped, with a line saying why, when the binary is absent.
 */
import test from 'ava';
import { chmodSync, mkdirSync, mkdtempSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTopology, destroyAllWithPrefix, testPrefix, listNamespaces, type Topology } from '../harness/netns';
import { pidAlive } from '../harness/procs';
import { startWireguardGo, wgGenKey } from '../harness/wireguard-go';
import { findWireguardGoCurrent, wireguardGoCurrentSubject, wireguardGoHubSubject, waitForPing, systemBin, WG_GO_CURRENT_ENV, WG_GO_CURRENT_REL } from '../../testbed';
import { forRoot } from '../harness/root';

const lookup = findWireguardGoCurrent();
const rootTest = 'missing' in lookup
  ? (() => {
    process.stderr.write(`${__filename}: skipped: ${lookup.missing}\n`);
    return test.serial.skip;
  })()
  : forRoot(test, __filename, { tools: ['ip', 'nft', 'ping', 'wg', 'wireguard-go'] });

const p = testPrefix('itwc');
test.after.always(async () => {
  await destroyAllWithPrefix(p);
});

test('the current wireguard-go is looked up by env var first, else in shared/peers above the checkout', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-wgcur-'));
  try {
    const deep = join(dir, 'wt', 'repo', 'dist', 'testbed');
    mkdirSync(deep, { recursive: true });
    // Nothing there yet: unavailable, and the message names where to put it and the env var.
    const none = findWireguardGoCurrent({}, deep);
    t.true('missing' in none && none.missing.includes(WG_GO_CURRENT_REL) && none.missing.includes(WG_GO_CURRENT_ENV));
    const bin = join(dir, WG_GO_CURRENT_REL);
    mkdirSync(join(dir, 'shared', 'peers'), { recursive: true });
    writeFileSync(bin, '#!/bin/sh\n', { mode: 0o644 });
    t.true('missing' in findWireguardGoCurrent({}, deep), 'a non-executable file does not count');
    chmodSync(bin, 0o755);
    t.deepEqual(findWireguardGoCurrent({}, deep), { path: bin }, 'found two levels above the repo (a worktree)');
    // The env var wins, and a wrong one is reported as such rather than silently falling back.
    t.deepEqual(findWireguardGoCurrent({ [WG_GO_CURRENT_ENV]: bin }, '/'), { path: bin });
    const wrong = findWireguardGoCurrent({ [WG_GO_CURRENT_ENV]: join(dir, 'nope') }, deep);
    t.true('missing' in wrong && wrong.missing.startsWith(`${WG_GO_CURRENT_ENV}=`));
    const [cur, deb] = [wireguardGoCurrentSubject(), wireguardGoHubSubject()];
    t.is(cur.name, 'wireguard-go-current');
    t.not(cur.name, deb.name);
    t.deepEqual(cur.requires, ['wg'], 'the current build is not installed from Debian');
    t.is(deb.unavailable, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** `ethtool -k` feature → on/off for an interface in a namespace. */
async function offloads(topo: Topology, ns: string, ifname: string): Promise<Map<string, string>> {
  const out = (await topo.exec(ns, systemBin('ethtool'), ['-k', ifname])).stdout;
  return new Map([...out.matchAll(/^\s*([a-z0-9-]+): (on|off)/gm)].map((m) => [m[1]!, m[2]!]));
}

rootTest('wireguard-go-current carries vpc1 → vpc2 through the hub, only through its tunnel, with TUN offloads on', async (t) => {
  const topo = await createTopology({ prefix: p });
  const subject = wireguardGoCurrentSubject();
  try {
    t.is(subject.unavailable?.(), undefined);
    t.regex(await subject.describe(), /^wireguard-go-current: wireguard-go v\d/);
    // Routes to each other's veth via the hub: only the hub's forward policy can stop this.
    await topo.exec(topo.ns.vpc1, 'ip', ['route', 'add', '10.92.1.0/24', 'via', topo.addr.hubVpc1]);
    await topo.exec(topo.ns.vpc2, 'ip', ['route', 'add', '10.91.1.0/24', 'via', topo.addr.hubVpc2]);
    const ep = await subject.setup(topo);
    await waitForPing(topo, ep.serverAddr, 30_000);
    const ping = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '3', '-i', '0.1', '-W', '2', '-I', ep.clientAddr, ep.serverAddr], { check: false });
    t.is(ping.code, 0, ping.stdout + ping.stderr);
    const veth = await topo.exec(topo.ns.vpc1, 'ping', ['-c', '1', '-W', '1', topo.addr.vpc2], { check: false });
    t.not(veth.code, 0, 'the hub must not forward vpc1 → vpc2 outside the tunnel');
    const pids = ep.pids?.() ?? [];
    t.is(pids.length, 3, 'hub and two spokes');
    for (const pid of pids) {
      t.true(pidAlive(pid));
      t.is(readlinkSync(`/proc/${pid}/exe`), realpathSync((lookup as { path: string }).path), 'the daemons are the current build, not Debian\'s');
    }

    if (!systemBin('ethtool').startsWith('/')) {
      t.log('ethtool not installed: TUN offload flags not checked');
      return;
    }
    // Control in the same topology: Debian's wireguard-go (pre-offload) leaves them off.
    const debian = await startWireguardGo(topo, { ns: topo.ns.hub, ifname: `${p}-wgd`, privateKey: await wgGenKey(), address: '10.98.0.1/24' });
    try {
      const old = await offloads(topo, topo.ns.hub, `${p}-wgd`);
      t.is(old.get('tx-tcp-segmentation'), 'off', 'control: Debian wireguard-go has no TSO on its TUN');
    } finally {
      await debian.stop();
    }
    for (const [ns, ifname] of [[topo.ns.hub, `${p}-wgh`], [topo.ns.vpc1, `${p}-wg1`], [topo.ns.vpc2, `${p}-wg2`]] as const) {
      const f = await offloads(topo, ns, ifname);
      t.is(f.get('tx-tcp-segmentation'), 'on', `${ifname}: TSO (IFF_VNET_HDR)`);
      t.is(f.get('tx-udp-segmentation'), 'on', `${ifname}: USO`);
      t.is(f.get('tx-checksum-ip-generic'), 'on', `${ifname}: checksum offload`);
    }
  } finally {
    await subject.teardown();
    await topo.destroy();
  }
  t.deepEqual((await listNamespaces()).filter((n) => n.startsWith(p)), []);
});
