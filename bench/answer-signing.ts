/**
 * What signing peer-map answers costs a coordinator (and verifying them, a member):
 * Ed25519 over the context + body (coordinator/answer-signing.ts), per answer.
 *
 *   npx tsx bench/answer-signing.ts [--seconds 1]
 *
 * Bodies: a one-peer delta (what a long-poll gets for one change), a 50-peer full map (a
 * controller's view), a 1000-peer full map. Each is signed (and verified) in a loop for
 * `seconds`; the answer is µs per operation and operations per second of one core.
 */
import { generateKeyPairSync } from 'node:crypto';
import { signAnswer, signingPublicKey, parseSigningPublicKey, verifyAnswer, newNonce } from '../coordinator';

function peer(i: number) {
  return { vip: `100.64.${i >> 8}.${i & 255}`, originalIp: `10.91.${i >> 8}.${i & 255}`, publicKey: Buffer.alloc(32, i).toString('base64'),
    hostname: `agent-${i}`, tags: ['agent'], inbound: ['tcp/22', 'tcp/8000-9000', 'icmp'] };
}

function measure(fn: () => void, seconds: number): { usPerOp: number; opsPerSec: number } {
  let n = 0;
  const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  while (process.hrtime.bigint() < end) for (let i = 0; i < 100; i++, n++) fn();
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  return { usPerOp: (s / n) * 1e6, opsPerSec: n / s };
}

function main(): void {
  const i = process.argv.indexOf('--seconds');
  const seconds = i > 0 ? Number(process.argv[i + 1]) : 1;
  const { privateKey } = generateKeyPairSync('ed25519');
  const pub = parseSigningPublicKey(signingPublicKey(privateKey));
  const bodies: Record<string, string> = {
    'delta, 1 peer': JSON.stringify({ full: false, version: 1234, upserts: [peer(1)], removals: [] }),
    'full map, 50 peers': JSON.stringify({ full: true, version: 1234, peers: Array.from({ length: 50 }, (_, k) => peer(k)) }),
    'full map, 1000 peers': JSON.stringify({ full: true, version: 1234, peers: Array.from({ length: 1000 }, (_, k) => peer(k)) }),
  };
  const ctx = { route: 'peers' as const, member: '100.64.0.1', since: '1233', nonce: newNonce() };
  for (const [name, body] of Object.entries(bodies)) {
    const sig = signAnswer(privateKey, ctx, body);
    const s = measure(() => signAnswer(privateKey, ctx, body), seconds);
    const v = measure(() => verifyAnswer(pub, ctx, body, sig), seconds);
    process.stdout.write(`${name.padEnd(22)} ${String(body.length).padStart(7)} B   sign ${s.usPerOp.toFixed(1).padStart(7)} µs (${Math.round(s.opsPerSec)}/s)`
      + `   verify ${v.usPerOp.toFixed(1).padStart(7)} µs (${Math.round(v.opsPerSec)}/s)\n`);
  }
}

main();
