/**
 * The three-namespace topology (testbed/topology.ts): reachability, isolation of vpc1 from vpc2,
 * the VIP load-balancer hook, and that teardown leaves nothing with the prefix behind — also
 * when the owning process dies of an exception or a signal. Root only.
 */
import test from 'ava';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTopology, listNamespaces, destroyAllWithPrefix, testPrefix, type Topology } from '../harness/netns';
import { ManagedProcess, pidAlive } from '../harness/procs';
import { forRoot } from '../harness/root';

const rootTest = forRoot(test, __filename, { tools: ['ip', 'nft', 'ping'] });

const used: string[] = [];
function prefix(): string {
  const p = testPrefix('itn7');
  used.push(p);
  return p;
}

test.after.always(async () => {
  for (const p of used) await destroyAllWithPrefix(p);
});

async function leftovers(p: string): Promise<string[]> {
  return (await listNamespaces()).filter((n) => n.startsWith(`${p}-`));
}

async function pings(topo: Topology, ns: string, addr: string): Promise<boolean> {
  const r = await topo.exec(ns, 'ping', ['-c', '1', '-W', '1', addr], { check: false });
  return r.code === 0;
}

rootTest('vpc1 and vpc2 reach the hub and the VIP, never each other; destroy removes everything', async (t) => {
  const p = prefix();
  const topo = await createTopology({ prefix: p });
  let sleeper: ManagedProcess | undefined;
  try {
    t.deepEqual((await leftovers(p)).sort(), [topo.ns.hub, topo.ns.vpc1, topo.ns.vpc2].sort());
    t.true(await pings(topo, topo.ns.vpc1, topo.addr.vip), 'vpc1 → VIP');
    t.true(await pings(topo, topo.ns.vpc1, topo.addr.hubVpc1), 'vpc1 → hub');
    t.true(await pings(topo, topo.ns.vpc2, topo.addr.vip), 'vpc2 → VIP');
    t.false(await pings(topo, topo.ns.vpc1, topo.addr.vpc2), 'vpc1 ↛ vpc2 (no route)');

    // Even with routes through the hub, the hub must not forward vpc1 ↔ vpc2.
    await topo.exec(topo.ns.vpc1, 'ip', ['route', 'add', '10.92.1.0/24', 'via', topo.addr.hubVpc1]);
    await topo.exec(topo.ns.vpc2, 'ip', ['route', 'add', '10.91.1.0/24', 'via', topo.addr.hubVpc2]);
    t.false(await pings(topo, topo.ns.vpc1, topo.addr.vpc2), 'vpc1 ↛ vpc2 (hub drops)');

    // The one opening a subject can ask for works, and its undo closes it again.
    const undo1 = await topo.allowHubForward('to-vpc1', 'to-vpc2');
    const undo2 = await topo.allowHubForward('to-vpc2', 'to-vpc1');
    t.true(await pings(topo, topo.ns.vpc1, topo.addr.vpc2), 'forwarding opened on request');
    await undo1();
    await undo2();
    t.false(await pings(topo, topo.ns.vpc1, topo.addr.vpc2), 'closed again after undo');

    sleeper = topo.spawn(topo.ns.vpc1, 'sleep', ['600']);
    t.true(pidAlive(sleeper.pid));
    const mtu = await topo.exec(topo.ns.hub, 'cat', ['/sys/class/net/to-vpc1/mtu']);
    t.is(mtu.stdout.trim(), '1500');
  } finally {
    await topo.destroy();
  }
  t.false(pidAlive(sleeper!.pid), 'spawned process killed by destroy');
  t.deepEqual(await leftovers(p), []);
  await topo.destroy(); // idempotent
});

rootTest('an exception inside the test still leaves nothing behind', async (t) => {
  const p = prefix();
  let pid = 0;
  await t.throwsAsync(async () => {
    const topo = await createTopology({ prefix: p });
    try {
      pid = topo.spawn(topo.ns.hub, 'sleep', ['600']).pid;
      throw new Error('boom');
    } finally {
      await topo.destroy();
    }
  }, { message: 'boom' });
  t.false(pidAlive(pid));
  t.deepEqual(await leftovers(p), []);
});

rootTest('exit and signal handlers clean up when the owner dies of an uncaught error or SIGINT/SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'itn7-'));
  try {
    const script = join(dir, 'owner.ts');
    writeFileSync(script, `
      import { createTopology } from ${JSON.stringify(resolve(__dirname, '../../testbed/topology'))};
      (async () => {
        const topo = await createTopology({ prefix: process.argv[2] });
        const s = topo.spawn(topo.ns.vpc2, 'sleep', ['600']);
        console.log('READY ' + s.pid);
        if (process.argv[3] === 'throw') setTimeout(() => { throw new Error('uncaught'); }, 50);
        else setInterval(() => undefined, 1000);
      })();
    `);
    for (const mode of ['throw', 'SIGINT', 'SIGTERM'] as const) {
      const p = prefix();
      const owner = new ManagedProcess(process.execPath, ['--import', 'tsx', script, p, mode], { name: `owner-${mode}` });
      const line = await owner.waitForLine(/^READY \d+/, 20_000);
      const sleeperPid = Number(line.split(' ')[1]);
      t.true(pidAlive(sleeperPid));
      if (mode !== 'throw') process.kill(owner.pid, mode);
      const st = await owner.waitForExit(20_000);
      if (mode === 'throw') t.not(st.code, 0);
      else t.is(st.signal, mode, `${mode}: the owner still dies of the signal`);
      t.false(pidAlive(sleeperPid), `${mode}: child killed`);
      t.deepEqual(await leftovers(p), [], `${mode}: namespaces removed`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

rootTest('relays behind the VIP: the hub DNATs UDP flows to the relay set by flow hash', async (t) => {
  const p = prefix();
  const topo = await createTopology({ prefix: p, relays: 2 });
  try {
    t.deepEqual(topo.ns.relays, [`${p}-r1`, `${p}-r2`]);
    const echo = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(process.argv[1]+':'+m,r.port,r.address));s.bind(7000,()=>console.log('UP'))`;
    for (const [i, ns] of topo.ns.relays.entries()) {
      const srv = topo.spawn(ns, process.execPath, ['-e', echo, `r${i + 1}`]);
      await srv.waitForLine(/^UP/);
    }
    await topo.setVipBackends('udp', 7000, topo.addr.relays);
    // 16 flows from distinct source ports: each answered, and both relays serve some.
    const client = `const d=require('dgram');let n=0;const seen=new Set();for(let i=0;i<16;i++){const s=d.createSocket('udp4');s.on('message',(m)=>{seen.add(String(m).split(':')[0]);s.close();if(++n===16){console.log([...seen].sort().join(','));}});s.send('hi',7000,process.argv[1]);}setTimeout(()=>{console.log('got '+n);process.exit(1)},3000).unref()`;
    const r = await topo.exec(topo.ns.vpc1, process.execPath, ['-e', client, topo.addr.vip]);
    t.is(r.stdout.trim(), 'r1,r2');
    t.false(await pings(topo, topo.ns.vpc1, topo.addr.vpc2), 'relays do not open vpc1 ↔ vpc2');
    await topo.setVipBackends('udp', 7000, [topo.addr.relays[1]!]);
    const r2 = await topo.exec(topo.ns.vpc1, process.execPath, ['-e', client, topo.addr.vip]);
    t.is(r2.stdout.trim(), 'r2', 'a backend removed from the set gets no new flows');
  } finally {
    await topo.destroy();
  }
  t.deepEqual(await leftovers(p), []);
});
