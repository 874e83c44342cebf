/**
 * IPv4 addresses and prefixes: the one parser, formatter and prefix arithmetic for every part
 * (configs, flags, API input, Redis values, the allowed-IPs table). In the spirit of Go's
 * net/netip, but addresses stay plain host-order uint32 numbers, cheap on the hot path.
 *
 * Text form (strict, the same everywhere): exactly four decimal octets 0–255 joined by '.',
 * no leading zeros ('010' could mean octal 8 to inet_aton), no signs, spaces, hex or trailing
 * junk; a prefix adds '/n' with n 0–32, also without leading zeros. Callers that accept
 * padded input trim it themselves.
 *
 * A `Prefix` is an address plus a length and MAY carry host bits: '100.64.0.1/10' is an
 * interface address (the TUN's own address and its on-link network). `masked(p)` is its
 * network ('100.64.0.0/10'). Parsers:
 *   parsePrefix('100.64.0.1/10')  → { addr: 100.64.0.1, bits: 10 }   (host bits kept)
 *   parseNetwork('10.1.2.3/24')   → throws: host bits set (a typo for an address?)
 *   masked(parsePrefix(s))        → the network, whatever was written
 * Tables (AllowedIps, IPAM, mapper ranges) hold masked prefixes.
 */

export class Ipv4ParseError extends Error {
  override readonly name = 'Ipv4ParseError';
  readonly code = 'ERR_BAD_IPV4';
}

/** Longest text form of an address ('255.255.255.255'). */
export const MAX_ADDR_LEN = 15;

/**
 * The address grammar as a JSON-schema `pattern` (ajv/fastify request validation); accepts
 * exactly what `parseAddr` accepts (test/unit/common/ipv4.test.ts checks the two agree).
 */
export const ADDR_PATTERN = '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$';

const DOT = 46;
const ZERO = 48;

/** Address in s[start, end) as a uint32, or -1. No allocation, no regex. */
function scanAddr(s: string, start: number, end: number): number {
  if (end - start > MAX_ADDR_LEN) return -1;
  let addr = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return -1;
      addr = addr * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      const d = c - ZERO;
      if (d < 0 || d > 9) return -1;
      if (digits === 1 && octet === 0) return -1; // leading zero
      octet = octet * 10 + d;
      if (octet > 255) return -1;
      digits++;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return addr * 256 + octet;
}

/** Prefix length in s[start, end) (0–32, no leading zero), or -1. */
function scanBits(s: string, start: number, end: number): number {
  const n = end - start;
  if (n < 1 || n > 2) return -1;
  const a = s.charCodeAt(start) - ZERO;
  if (a < 0 || a > 9) return -1;
  if (n === 1) return a;
  const b = s.charCodeAt(start + 1) - ZERO;
  if (a === 0 || b < 0 || b > 9) return -1;
  const bits = a * 10 + b;
  return bits > 32 ? -1 : bits;
}

/** 'a.b.c.d' → host-order uint32, or undefined for anything else. */
export function tryParseAddr(s: string): number | undefined {
  const a = scanAddr(s, 0, s.length);
  return a < 0 ? undefined : a;
}

/** 'a.b.c.d' → host-order uint32; throws Ipv4ParseError naming the input. */
export function parseAddr(s: string): number {
  const a = scanAddr(s, 0, s.length);
  if (a < 0) throw new Ipv4ParseError(`not an IPv4 address (want a.b.c.d, decimal octets 0-255, no leading zeros): ${JSON.stringify(s)}`);
  return a;
}

export function isAddr(s: string): boolean {
  return scanAddr(s, 0, s.length) >= 0;
}

export function formatAddr(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

/** The 4 bytes at buf[off] (network order) as a host-order uint32. */
export function readAddr(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

/** Writes a host-order uint32 address as 4 network-order bytes at buf[off]. */
export function writeAddr(buf: Uint8Array, off: number, addr: number): void {
  buf[off] = (addr >>> 24) & 255;
  buf[off + 1] = (addr >>> 16) & 255;
  buf[off + 2] = (addr >>> 8) & 255;
  buf[off + 3] = addr & 255;
}

/** An address and a prefix length 0–32; `addr` may carry host bits (see the file comment). */
export interface Prefix {
  readonly addr: number;
  readonly bits: number;
}

/** MASKS[n] = int32 netmask of a /n. */
const MASKS = new Int32Array(33);
for (let n = 1; n <= 32; n++) MASKS[n] = (0xffffffff << (32 - n)) | 0;

/** Host-order uint32 netmask of a /bits. */
export function prefixMask(bits: number): number {
  return MASKS[bits]! >>> 0;
}

/** A prefix from numbers; throws RangeError on a length outside 0–32 or a non-uint32 address. */
export function makePrefix(addr: number, bits: number): Prefix {
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new RangeError(`prefix length must be 0-32, got ${bits}`);
  if (!Number.isInteger(addr) || addr < 0 || addr > 0xffffffff) throw new RangeError(`not a uint32 IPv4 address: ${addr}`);
  return { addr, bits };
}

/** 'a.b.c.d/n' → Prefix, or undefined. Host bits are kept. */
export function tryParsePrefix(s: string): Prefix | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addr = scanAddr(s, 0, slash);
  const bits = scanBits(s, slash + 1, s.length);
  return addr < 0 || bits < 0 ? undefined : { addr, bits };
}

/** 'a.b.c.d/n' → Prefix, host bits kept ('100.64.0.1/10' is an interface address). */
export function parsePrefix(s: string): Prefix {
  const p = tryParsePrefix(s);
  if (p === undefined) throw new Ipv4ParseError(`not an IPv4 prefix (${prefixProblem(s)}): ${JSON.stringify(s)}`);
  return p;
}

/** Why s is not a prefix, for the error message (slow path only). */
function prefixProblem(s: string): string {
  const slash = s.indexOf('/');
  if (slash < 0) return 'want a.b.c.d/n, the /n is missing';
  if (scanAddr(s, 0, slash) < 0) return `bad address ${JSON.stringify(s.slice(0, slash))}: want four decimal octets 0-255, no leading zeros`;
  return `bad length ${JSON.stringify(s.slice(slash + 1))}: want 0-32, no leading zeros`;
}

/** 'a.b.c.d/n' that must be a network: host bits set throw ('10.0.0.1/24' is probably a typo). */
export function parseNetwork(s: string): Prefix {
  const p = parsePrefix(s);
  if (!isMasked(p)) throw new Ipv4ParseError(`host bits set in ${JSON.stringify(s)} (the network is ${formatPrefix(masked(p))})`);
  return p;
}

/** Network address of p (host bits cleared). */
export function networkOf(p: Prefix): number {
  return (p.addr & MASKS[p.bits]!) >>> 0;
}

/** p with its host bits cleared: the network. */
export function masked(p: Prefix): Prefix {
  const addr = networkOf(p);
  return addr === p.addr ? p : { addr, bits: p.bits };
}

export function isMasked(p: Prefix): boolean {
  return networkOf(p) === p.addr;
}

export function contains(p: Prefix, addr: number): boolean {
  return ((addr ^ p.addr) & MASKS[p.bits]!) === 0;
}

/** True when every address of `inner` is in `outer`. */
export function containsPrefix(outer: Prefix, inner: Prefix): boolean {
  return inner.bits >= outer.bits && contains(outer, inner.addr);
}

/** True when a and b share at least one address (for prefixes: one contains the other). */
export function overlaps(a: Prefix, b: Prefix): boolean {
  const bits = a.bits < b.bits ? a.bits : b.bits;
  return ((a.addr ^ b.addr) & MASKS[bits]!) === 0;
}

/** Number of addresses in p (2^(32-bits); 2^32 for /0). */
export function prefixSize(p: Prefix): number {
  return 2 ** (32 - p.bits);
}

/** Lowest address of p (its network address). */
export function firstAddr(p: Prefix): number {
  return networkOf(p);
}

/** Highest address of p (its broadcast address for /0–/30). */
export function lastAddr(p: Prefix): number {
  return (p.addr | ~MASKS[p.bits]!) >>> 0;
}

/** Every address of p in ascending order, network and broadcast included (not for /0 loops). */
export function* addrsOf(p: Prefix): Generator<number, void, undefined> {
  const last = lastAddr(p);
  for (let a = firstAddr(p); a <= last; a++) yield a;
}

/** 'a.b.c.d/n' as the prefix is (host bits kept; format `masked(p)` for the network). */
export function formatPrefix(p: Prefix): string {
  return `${formatAddr(p.addr)}/${p.bits}`;
}

/** Special-purpose ranges (RFC 6890 subset) that are never a member's original address. */
export const SPECIAL_PURPOSE = [
  { name: 'this-network', prefix: { addr: 0x00000000, bits: 8 } },
  { name: 'loopback', prefix: { addr: 0x7f000000, bits: 8 } },
  { name: 'link-local', prefix: { addr: 0xa9fe0000, bits: 16 } },
  { name: 'multicast', prefix: { addr: 0xe0000000, bits: 4 } },
  { name: 'reserved', prefix: { addr: 0xf0000000, bits: 4 } },
  { name: 'limited-broadcast', prefix: { addr: 0xffffffff, bits: 32 } },
] as const satisfies readonly { name: string; prefix: Prefix }[];

export type SpecialPurposeName = (typeof SPECIAL_PURPOSE)[number]['name'];

/** Name of the special-purpose range holding addr, or undefined for an ordinary address. */
export function specialPurposeOf(addr: number): SpecialPurposeName | undefined {
  for (const r of SPECIAL_PURPOSE) if (contains(r.prefix, addr)) return r.name;
  return undefined;
}

export function isSpecialPurpose(addr: number): boolean {
  return specialPurposeOf(addr) !== undefined;
}
