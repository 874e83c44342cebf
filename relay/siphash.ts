/**
 * SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012): a 64-bit MAC
 * under a 128-bit key, built for short inputs. Here with 32-bit halves on a preallocated
 * state, so a call allocates nothing (the MESH_DATA tag, relay/mesh-frame.ts, runs it per frame).
 * Checked against the 64 vectors of the reference implementation (test/unit/relay/siphash.test.ts).
 * Synchronous; the shared state is fully rewritten by each call.
 */

/** v0..v3 as [lo, hi] pairs: v0 = s[0], s[1]; v1 = s[2], s[3]; v2 = s[4], s[5]; v3 = s[6], s[7]. */
const s = new Uint32Array(8);

function sipRound(): void {
  let v0l = s[0], v0h = s[1], v1l = s[2], v1h = s[3], v2l = s[4], v2h = s[5], v3l = s[6], v3h = s[7];
  let t: number, u: number;
  // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
  t = v0l + v1l; v0h = (v0h + v1h + (t > 0xffffffff ? 1 : 0)) >>> 0; v0l = t >>> 0;
  t = (v1l << 13) | (v1h >>> 19); u = (v1h << 13) | (v1l >>> 19);
  v1l = (t ^ v0l) >>> 0; v1h = (u ^ v0h) >>> 0;
  t = v0l; v0l = v0h; v0h = t;
  // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
  t = v2l + v3l; v2h = (v2h + v3h + (t > 0xffffffff ? 1 : 0)) >>> 0; v2l = t >>> 0;
  t = (v3l << 16) | (v3h >>> 16); u = (v3h << 16) | (v3l >>> 16);
  v3l = (t ^ v2l) >>> 0; v3h = (u ^ v2h) >>> 0;
  // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
  t = v0l + v3l; v0h = (v0h + v3h + (t > 0xffffffff ? 1 : 0)) >>> 0; v0l = t >>> 0;
  t = (v3l << 21) | (v3h >>> 11); u = (v3h << 21) | (v3l >>> 11);
  v3l = (t ^ v0l) >>> 0; v3h = (u ^ v0h) >>> 0;
  // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
  t = v2l + v1l; v2h = (v2h + v1h + (t > 0xffffffff ? 1 : 0)) >>> 0; v2l = t >>> 0;
  t = (v1l << 17) | (v1h >>> 15); u = (v1h << 17) | (v1l >>> 15);
  v1l = (t ^ v2l) >>> 0; v1h = (u ^ v2h) >>> 0;
  t = v2l; v2l = v2h; v2h = t;
  s[0] = v0l; s[1] = v0h; s[2] = v1l; s[3] = v1h; s[4] = v2l; s[5] = v2h; s[6] = v3l; s[7] = v3h;
}

function le32(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

function absorb(ml: number, mh: number): void {
  s[6] ^= ml; s[7] ^= mh;
  sipRound(); sipRound();
  s[0] ^= ml; s[1] ^= mh;
}

/**
 * SipHash-2-4 of `msg[off .. off + len]` under the 16-byte `key`; the 8-byte result (little
 * endian, as in the reference) goes to `out[outOff .. outOff + 8]`. Allocates nothing.
 */
export function siphash24(key: Uint8Array, msg: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): void {
  if (key.length !== 16) throw new RangeError('SipHash key is 16 bytes');
  const k0l = le32(key, 0), k0h = le32(key, 4), k1l = le32(key, 8), k1h = le32(key, 12);
  s[0] = k0l ^ 0x70736575; s[1] = k0h ^ 0x736f6d65; // "somepseu"
  s[2] = k1l ^ 0x6e646f6d; s[3] = k1h ^ 0x646f7261; // "dorandom"
  s[4] = k0l ^ 0x6e657261; s[5] = k0h ^ 0x6c796765; // "lygenera"
  s[6] = k1l ^ 0x79746573; s[7] = k1h ^ 0x74656462; // "tedbytes"
  const end = off + len;
  const full = off + (len & ~7);
  let i = off;
  for (; i < full; i += 8) absorb(le32(msg, i), le32(msg, i + 4));
  // Last block: the remaining 0-7 bytes, then len mod 256 in the top byte.
  let ml = 0, mh = ((len & 0xff) << 24) >>> 0;
  for (let j = 0; i < end; i++, j++) {
    if (j < 4) ml |= msg[i] << (8 * j);
    else mh |= msg[i] << (8 * (j - 4));
  }
  absorb(ml >>> 0, mh >>> 0);
  s[4] ^= 0xff;
  sipRound(); sipRound(); sipRound(); sipRound();
  const rl = (s[0] ^ s[2] ^ s[4] ^ s[6]) >>> 0, rh = (s[1] ^ s[3] ^ s[5] ^ s[7]) >>> 0;
  out[outOff] = rl & 0xff; out[outOff + 1] = (rl >>> 8) & 0xff; out[outOff + 2] = (rl >>> 16) & 0xff; out[outOff + 3] = rl >>> 24;
  out[outOff + 4] = rh & 0xff; out[outOff + 5] = (rh >>> 8) & 0xff; out[outOff + 6] = (rh >>> 16) & 0xff; out[outOff + 7] = rh >>> 24;
}
