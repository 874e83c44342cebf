/**
 * IPv4 longest-prefix-match table: CIDR → value (a peer), for routing outbound packets by
 * destination and checking inbound sources (cryptokey routing, wireguard-go allowedips.go).
 *
 * Representation: one Map per prefix length that is in use, keyed by the network address
 * as an int32 (`(addr & mask) | 0`, a V8 small integer, so lookups never box a number),
 * plus the in-use lengths sorted longest first. `lookup` probes at most one Map per
 * distinct length in use (typically 1–3: /32 for members, a few original-IP prefixes), and
 * allocates nothing.
 *
 * Host bits: the string forms of insert/remove parse with `parseNetwork` (common/ipv4.ts) and
 * REJECT a prefix with host bits set ('10.0.0.1/24' is probably a typo for an address, not a
 * network); the numeric forms
 * `insert(addr, bits, v)` mask them off (callers computing prefixes do not need to).
 * Values are compared with `===` and must not be `undefined`.
 */

import { formatPrefix, parseNetwork, type Prefix } from '../common';

/** MASKS[n] = int32 netmask of a /n: lookups key their Maps by int32 (no boxed numbers). */
const MASKS = new Int32Array(33);
for (let n = 1; n <= 32; n++) MASKS[n] = (0xffffffff << (32 - n)) | 0;

export interface AllowedIpsEntry<T> {
  network: number;
  bits: number;
  value: T;
  cidr: string;
}

export class AllowedIps<T> {
  private readonly byLength: Array<Map<number, T> | undefined> = new Array(33).fill(undefined);
  /** In-use prefix lengths, longest first; `lengthCount` of them are valid. */
  private readonly lengths = new Int32Array(33);
  private lengthCount = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Add or replace the value of a prefix. String form rejects host bits; numeric form masks them. */
  insert(cidr: string, value: T): void;
  insert(addr: number, bits: number, value: T): void;
  insert(a: string | number, b: number | T, c?: T): void {
    const [network, bits, value] = typeof a === 'string' ? withValue(parseNetwork(a), b as T) : [a, checkBits(b as number), c as T];
    if (value === undefined) throw new TypeError('AllowedIps values must not be undefined');
    let m = this.byLength[bits];
    if (!m) {
      m = new Map();
      this.byLength[bits] = m;
      this.rebuildLengths();
    }
    const key = (network & MASKS[bits]) | 0;
    if (!m.has(key)) this.count++;
    m.set(key, value);
  }

  /** Remove one prefix; true when it was present. */
  remove(cidr: string): boolean;
  remove(addr: number, bits: number): boolean;
  remove(a: string | number, b?: number): boolean {
    const { addr: network, bits } = typeof a === 'string' ? parseNetwork(a) : { addr: a, bits: checkBits(b as number) };
    const m = this.byLength[bits];
    if (!m || !m.delete((network & MASKS[bits]) | 0)) return false;
    this.count--;
    if (m.size === 0) this.dropLength(bits);
    return true;
  }

  /** Remove every prefix mapped to `value` (a peer leaving); returns how many. */
  removeByValue(value: T): number {
    let removed = 0;
    for (let bits = 0; bits <= 32; bits++) {
      const m = this.byLength[bits];
      if (!m) continue;
      for (const [k, v] of m) {
        if (v === value) { m.delete(k); removed++; }
      }
      if (m.size === 0) this.dropLength(bits);
    }
    this.count -= removed;
    return removed;
  }

  /** Exact match of one prefix (not longest-prefix). */
  get(addr: number, bits: number): T | undefined {
    return this.byLength[checkBits(bits)]?.get((addr & MASKS[bits]) | 0);
  }

  /** Longest-prefix match for a host-order IPv4 address. Allocation-free. */
  lookup(addr: number): T | undefined {
    const lengths = this.lengths;
    for (let i = 0; i < this.lengthCount; i++) {
      const bits = lengths[i];
      const v = (this.byLength[bits] as Map<number, T>).get(addr & MASKS[bits]);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  /** All prefixes, longest first (a snapshot; not for the hot path). */
  entries(): AllowedIpsEntry<T>[] {
    const out: AllowedIpsEntry<T>[] = [];
    for (let i = 0; i < this.lengthCount; i++) {
      const bits = this.lengths[i];
      for (const [k, value] of this.byLength[bits] as Map<number, T>) {
        const network = k >>> 0;
        out.push({ network, bits, value, cidr: formatPrefix({ addr: network, bits }) });
      }
    }
    return out;
  }

  clear(): void {
    this.byLength.fill(undefined);
    this.lengthCount = 0;
    this.count = 0;
  }

  private dropLength(bits: number): void {
    this.byLength[bits] = undefined;
    this.rebuildLengths();
  }

  private rebuildLengths(): void {
    let n = 0;
    for (let bits = 32; bits >= 0; bits--) if (this.byLength[bits]) this.lengths[n++] = bits;
    this.lengthCount = n;
  }
}

function checkBits(bits: number): number {
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new RangeError(`prefix length must be 0-32, got ${bits}`);
  return bits;
}

function withValue<T>(p: Prefix, value: T): [number, number, T] {
  return [p.addr, p.bits, value];
}
