import test from 'ava';
import fc from 'fast-check';
import { ManualClock } from '../../../common/clock';
import { parseAddr } from '../../../common/ipv4';
import { FlowFilter, FLOW_DROP_REASONS, MIN_LATER_FRAGMENT_BLOCKS } from '../../../node-agent/flow-filter';
import { DEFAULT_UDP_TIMEOUT_MS, DEFAULT_ICMP_TIMEOUT_MS } from '../../../node-agent/flow-table';
import { compilePolicy, parsePolicy, PortSet } from '../../../policy';
import { echoReply, echoRequest, icmp, icmpError, ipv4, tcp, TCP_FLAGS, udp } from '../../harness/packets';

const ME = '100.64.0.2'; // the local member's virtual IP
const MY_ORIGINAL = '10.0.0.5'; // its original IP (transparent mode)
const PEER = '100.64.0.9';
const OTHER_PEER = '100.64.0.10';
const { SYN, ACK, PSH, RST } = TCP_FLAGS;

// The ports PEER (a controller) may open towards ME (an agent), from a real policy.
const POLICY = compilePolicy(parsePolicy(JSON.stringify({
  rules: [{ from: ['tag:controller'], to: ['tag:agent'], ports: ['tcp/22', 'tcp/8000-9000', 'udp/53', 'icmp'] }],
})));
const FROM_CONTROLLER = POLICY.inboundFrom(['agent'], ['controller']);
const FROM_AGENT = POLICY.inboundFrom(['agent'], ['agent']); // nothing

function setup(opts: { size?: number } = {}) {
  const clock = new ManualClock();
  const f = new FlowFilter(clock, { localAddresses: [parseAddr(ME), parseAddr(MY_ORIGINAL)], ...opts });
  const inbound = (p: Buffer, ports: PortSet = FROM_CONTROLLER) => f.inbound(p, 0, p.length, ports);
  const outbound = (p: Buffer) => f.noteOutbound(p, 0, p.length);
  return { clock, f, inbound, outbound };
}

test('TCP: a SYN to an allowed port passes, to another port drops with reason policy', (t) => {
  const { f, inbound } = setup();
  t.is(inbound(tcp(PEER, ME, 40000, 22, SYN)), 'pass');
  t.is(inbound(tcp(PEER, ME, 40000, 8000, SYN)), 'pass');
  t.is(inbound(tcp(PEER, ME, 40000, 9000, SYN)), 'pass');
  t.is(inbound(tcp(PEER, ME, 40000, 23, SYN)), 'policy');
  t.is(inbound(tcp(PEER, ME, 40000, 9001, SYN)), 'policy');
  t.is(inbound(tcp(PEER, ME, 40000, 22, SYN), FROM_AGENT), 'policy'); // same packet, a peer with no rule
  t.is(inbound(tcp(PEER, ME, 40000, 22, SYN | RST)), 'pass'); // SYN without ACK: checked as new
  t.is(inbound(tcp(PEER, ME, 40000, 23, SYN | RST)), 'policy');
  t.deepEqual(f.drops, { malformed: 0, 'not-our-address': 0, policy: 4 });
});

test('TCP: a SYN to a closed port drops while our own outbound connection\'s replies pass', (t) => {
  const { inbound, outbound } = setup();
  // ME opens a connection to PEER:80 (noteOutbound needs no state for TCP) ...
  outbound(tcp(ME, PEER, 51000, 80, SYN));
  t.is(inbound(tcp(PEER, ME, 80, 51000, SYN | ACK)), 'pass');
  t.is(inbound(tcp(PEER, ME, 80, 51000, ACK | PSH, 1360)), 'pass');
  // ... but PEER may not open one to ME on 80 (or the ephemeral port).
  t.is(inbound(tcp(PEER, ME, 80, 51000, SYN)), 'policy');
  t.is(inbound(tcp(PEER, ME, 33000, 80, SYN)), 'policy');
  // Non-SYN segments pass without state (see flow-filter.ts: a connection needs a SYN).
  t.is(inbound(tcp(PEER, ME, 33000, 80, ACK), FROM_AGENT), 'pass');
});

test('UDP: allowed port passes; a reply to our flow passes; a forged reply from another port or peer drops', (t) => {
  const { f, inbound, outbound, clock } = setup();
  t.is(inbound(udp(PEER, ME, 5000, 53)), 'pass'); // udp/53 is open to PEER
  t.is(inbound(udp(PEER, ME, 5000, 54)), 'policy');
  outbound(udp(ME, PEER, 40001, 7777, 100)); // ME opens PEER:7777
  t.is(inbound(udp(PEER, ME, 7777, 40001, 100), FROM_AGENT), 'pass'); // the reply, even with no rule at all
  t.is(inbound(udp(PEER, ME, 7778, 40001), FROM_AGENT), 'policy'); // other remote port
  t.is(inbound(udp(PEER, ME, 7777, 40002), FROM_AGENT), 'policy'); // other local port
  t.is(inbound(udp(OTHER_PEER, ME, 7777, 40001), FROM_AGENT), 'policy'); // other peer
  t.is(inbound(udp(PEER, MY_ORIGINAL, 7777, 40001), FROM_AGENT), 'policy'); // flow was from the vip
  // Replies keep the flow alive; idle past the timeout it is gone.
  clock.advance(DEFAULT_UDP_TIMEOUT_MS - 1);
  t.is(inbound(udp(PEER, ME, 7777, 40001), FROM_AGENT), 'pass');
  clock.advance(DEFAULT_UDP_TIMEOUT_MS - 1);
  t.is(inbound(udp(PEER, ME, 7777, 40001), FROM_AGENT), 'pass');
  clock.advance(DEFAULT_UDP_TIMEOUT_MS);
  t.is(inbound(udp(PEER, ME, 7777, 40001), FROM_AGENT), 'policy');
  t.is(f.drops.policy, 6);
});

test('UDP: noteOutbound records only flows from our own addresses, and refreshes repeated ones', (t) => {
  const { f, inbound, outbound, clock } = setup();
  outbound(udp('192.0.2.1', PEER, 40001, 7777)); // not ours: a reply could not pass anyway
  t.is(f.table.size(clock.now()), 0);
  outbound(udp(MY_ORIGINAL, PEER, 40001, 7777));
  for (let i = 0; i < 10; i++) outbound(udp(MY_ORIGINAL, PEER, 40001, 7777));
  t.is(f.table.size(clock.now()), 1);
  clock.advance(DEFAULT_UDP_TIMEOUT_MS - 10);
  outbound(udp(MY_ORIGINAL, PEER, 40001, 7777)); // refresh (the last refresh was long enough ago)
  clock.advance(100);
  t.is(inbound(udp(PEER, MY_ORIGINAL, 7777, 40001), FROM_AGENT), 'pass');
  outbound(tcp(ME, PEER, 1, 2, SYN));
  outbound(echoReply(ME, PEER, 3)); // only echo requests are recorded
  t.is(f.table.size(clock.now()), 1);
});

test('ICMP: echo requests need icmp; replies to our pings and errors about our packets pass', (t) => {
  const { inbound, outbound, clock } = setup();
  t.is(inbound(echoRequest(PEER, ME, 9)), 'pass');
  t.is(inbound(echoRequest(PEER, ME, 9), FROM_AGENT), 'policy');
  t.is(inbound(icmp(PEER, ME, 13, 0, 1, 1, Buffer.alloc(12))), 'pass'); // timestamp: like a request
  t.is(inbound(icmp(PEER, ME, 5, 0, 0, 0, Buffer.alloc(28)), FROM_AGENT), 'policy'); // redirect: never a reply
  // A reply passes only for a ping we sent (same peer, same id).
  t.is(inbound(echoReply(PEER, ME, 7), FROM_AGENT), 'policy');
  outbound(echoRequest(ME, PEER, 7));
  t.is(inbound(echoReply(PEER, ME, 7), FROM_AGENT), 'pass');
  t.is(inbound(echoReply(PEER, ME, 8), FROM_AGENT), 'policy');
  t.is(inbound(echoReply(OTHER_PEER, ME, 7), FROM_AGENT), 'policy');
  clock.advance(DEFAULT_ICMP_TIMEOUT_MS + 1);
  t.is(inbound(echoReply(PEER, ME, 7), FROM_AGENT), 'policy');
  // Errors: unreachable, time exceeded, parameter problem about a packet we sent pass.
  const ours = udp(ME, PEER, 40001, 9999);
  for (const type of [3, 11, 12]) t.is(inbound(icmpError(PEER, ME, ours, type, 0), FROM_AGENT), 'pass', `type ${type}`);
  const notOurs = udp(OTHER_PEER, PEER, 40001, 9999);
  t.is(inbound(icmpError(PEER, ME, notOurs), FROM_AGENT), 'policy');
  t.is(inbound(icmp(PEER, ME, 3, 3, 0, 0, Buffer.alloc(10)), FROM_AGENT), 'malformed'); // quote too short
});

test('the destination must be one of our addresses (vip, or the original IP in transparent mode)', (t) => {
  const { f, inbound } = setup();
  t.is(inbound(tcp(PEER, ME, 1, 22, SYN)), 'pass');
  t.is(inbound(tcp(PEER, MY_ORIGINAL, 1, 22, SYN)), 'pass');
  for (const dst of ['100.64.0.3', '10.0.0.6', '255.255.255.255', '224.0.0.1', '0.0.0.0']) {
    t.is(inbound(tcp(PEER, dst, 1, 22, SYN)), 'not-our-address', dst);
    t.is(inbound(udp(PEER, dst, 1, 53), PortSet.ALL), 'not-our-address', dst); // even with no policy
  }
  t.is(f.drops['not-our-address'], 10);
  f.setLocalAddresses([parseAddr(ME)]);
  t.is(inbound(tcp(PEER, MY_ORIGINAL, 1, 22, SYN)), 'not-our-address');
  t.is(inbound(tcp(PEER, ME, 1, 22, SYN)), 'pass');
});

test('fragments: first fragments are filtered, later ones pass unless they could overlap the header', (t) => {
  const { inbound } = setup();
  const seg = tcp(PEER, ME, 1, 23, SYN, 100).subarray(20);
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 6, moreFragments: true }, seg)), 'policy');
  const allowed = tcp(PEER, ME, 1, 22, SYN, 100).subarray(20);
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 6, moreFragments: true }, allowed)), 'pass');
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 6, moreFragments: true }, seg.subarray(0, 16))), 'malformed'); // tiny first fragment
  const later = Buffer.alloc(200, 7);
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 6, fragOffset: 185 }, later), FROM_AGENT), 'pass');
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 17, fragOffset: MIN_LATER_FRAGMENT_BLOCKS }, later), FROM_AGENT), 'pass');
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 6, fragOffset: 1, moreFragments: true }, later)), 'malformed'); // RFC 1858 overlap
  t.is(inbound(ipv4({ src: PEER, dst: '10.9.9.9', proto: 6, fragOffset: 185 }, later)), 'not-our-address');
});

test('other protocols need *; no policy (PortSet.ALL) passes everything addressed to us', (t) => {
  const { inbound } = setup();
  const gre = ipv4({ src: PEER, dst: ME, proto: 47 }, Buffer.alloc(40));
  t.is(inbound(gre), 'policy');
  t.is(inbound(gre, PortSet.ALL), 'pass');
  for (const p of [tcp(PEER, ME, 1, 23, SYN), udp(PEER, ME, 1, 9), echoRequest(PEER, ME, 1), echoReply(PEER, ME, 1)]) {
    t.is(inbound(p, PortSet.ALL), 'pass');
    t.is(inbound(p, compilePolicy(null).inboundFrom([], [])), 'pass');
  }
});

test('IP options, WireGuard padding and an offset region are handled', (t) => {
  const { f } = setup();
  const seg = tcp(PEER, ME, 1, 23, SYN).subarray(20);
  const withOpts = ipv4({ src: PEER, dst: ME, proto: 6, optionWords: 10 }, seg);
  t.is(f.inbound(withOpts, 0, withOpts.length, FROM_CONTROLLER), 'policy'); // ports read past the 60-byte header
  const buf = Buffer.alloc(2000, 0xee);
  const p = tcp(PEER, ME, 1, 22, SYN);
  p.copy(buf, 100);
  t.is(f.inbound(buf, 100, p.length + 12, FROM_CONTROLLER), 'pass'); // padded region
});

test('malformed packets drop, and arbitrary bytes never throw', (t) => {
  const { f, inbound } = setup();
  const good = tcp(PEER, ME, 1, 22, SYN);
  t.is(inbound(good.subarray(0, 19)), 'malformed');
  t.is(f.inbound(good, 0, good.length - 1, FROM_CONTROLLER), 'malformed'); // total length > region
  t.is(f.inbound(good, 10, good.length, FROM_CONTROLLER), 'malformed'); // region past the buffer
  t.is(f.inbound(good, -1, 20, FROM_CONTROLLER), 'malformed');
  const v6 = Buffer.from(good); v6[0] = 0x65;
  t.is(inbound(v6), 'malformed');
  const badIhl = Buffer.from(good); badIhl[0] = 0x44;
  t.is(inbound(badIhl), 'malformed');
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 6 }, Buffer.alloc(19))), 'malformed'); // TCP header cut
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 17 }, Buffer.alloc(7))), 'malformed');
  t.is(inbound(ipv4({ src: PEER, dst: ME, proto: 1 }, Buffer.alloc(7))), 'malformed');
  t.is(f.drops.malformed, 9);
  const verdicts = new Set(['pass', ...FLOW_DROP_REASONS]);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.integer({ min: -5, max: 130 }), fc.integer({ min: -5, max: 130 }),
    fc.boolean(), (bytes, off, len, version4) => {
      const b = Buffer.from(bytes);
      if (version4 && b.length > 19) { b[0] = 0x45; b.writeUInt32BE(parseAddr(ME), 16); } // get past the first checks too
      for (const ports of [FROM_CONTROLLER, FROM_AGENT, PortSet.ALL]) {
        if (!verdicts.has(f.inbound(b, off, len, ports))) return false;
      }
      f.noteOutbound(b, off, len);
      return true;
    }), { numRuns: 3000 });
  t.pass();
});

test('the reply table stays bounded under 100k distinct flows and keeps the newest', (t) => {
  const { f, inbound, outbound, clock } = setup();
  const cap = f.table.capacity;
  t.is(cap, 65536);
  const flows = 100_000;
  const peerOf = (i: number) => `100.64.${(i >> 8) & 255}.${(i & 255) || 1}`;
  for (let i = 0; i < flows; i++) {
    outbound(udp(ME, peerOf(i), 10000 + (i % 50000), 53));
    clock.advance(0.01);
  }
  const live = f.table.size(clock.now());
  t.true(live <= cap, `${live} live entries`);
  t.is(f.table.capacity, cap);
  t.true(f.table.evictions >= flows - cap);
  t.log(`${live} live of ${cap}, ${f.table.evictions} evicted`);
  // The newest 1000 flows are all still answered; an entry never inserted is not.
  for (let i = flows - 1000; i < flows; i++) {
    if (inbound(udp(peerOf(i), ME, 53, 10000 + (i % 50000)), FROM_AGENT) !== 'pass') return t.fail(`flow ${i} lost`);
  }
  t.is(inbound(udp('100.64.1.1', ME, 53, 9999), FROM_AGENT), 'policy');
});

test('a caller-supplied now is used instead of the clock', (t) => {
  const { f, clock } = setup();
  const out = udp(ME, PEER, 40001, 7777);
  const reply = udp(PEER, ME, 7777, 40001);
  f.noteOutbound(out, 0, out.length, 1_000_000); // the batch's time, far ahead of the manual clock
  t.is(f.inbound(reply, 0, reply.length, FROM_AGENT, 1_000_000 + DEFAULT_UDP_TIMEOUT_MS - 1), 'pass');
  t.is(f.inbound(reply, 0, reply.length, FROM_AGENT, 1_000_000 + 3 * DEFAULT_UDP_TIMEOUT_MS), 'policy');
  t.is(clock.now(), 0);
});
