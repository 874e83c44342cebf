/**
 * IPv4 prefixes 'a.b.c.d/n', parsed strictly, for every part: configs and flags (agent,
 * coordinator, mapper) and the allowed-IPs table. One parser, so a prefix means the same
 * thing everywhere: four decimal octets 0–255 without leading zeros, a length 0–32.
 */
export class CidrParseError extends Error {
  override readonly name = 'CidrParseError';
  readonly code = 'ERR_BAD_CIDR';
}

export interface Cidr {
  /** Host-order uint32 network address (host bits zero). */
  network: number;
  /** Prefix length 0..32. */
  bits: number;
  /** The address as written, host bits kept ('100.64.0.1/10' is an interface address). */
  address: number;
}

/** MASKS[n] = int32 netmask of a /n. */
const MASKS = new Int32Array(33);
for (let n = 1; n <= 32; n++) MASKS[n] = (0xffffffff << (32 - n)) | 0;

/** Host-order uint32 netmask of a /bits. */
export function prefixMask(bits: number): number {
  return MASKS[bits] >>> 0;
}

const OCTET = /^(0|[1-9]\d{0,2})$/;
const BITS = /^(0|[1-9]\d?)$/;

/**
 * Strictly parse 'a.b.c.d/n'. Host bits set → CidrParseError ('10.0.0.1/24' is probably a
 * typo for an address, not a network), unless `normalize`: then `network` has them masked
 * off and `address` keeps them.
 */
export function parseCidr(s: string, opts: { normalize?: boolean } = {}): Cidr {
  const slash = s.indexOf('/');
  if (slash < 0) throw new CidrParseError(`not a CIDR (missing /prefix): '${s}'`);
  const addrPart = s.slice(0, slash);
  const bitsPart = s.slice(slash + 1);
  const octets = addrPart.split('.');
  if (octets.length !== 4) throw new CidrParseError(`not a CIDR (need four octets): '${s}'`);
  let addr = 0;
  for (const o of octets) {
    if (!OCTET.test(o) || Number(o) > 255) throw new CidrParseError(`not a CIDR (bad octet '${o}'): '${s}'`);
    addr = addr * 256 + Number(o);
  }
  if (!BITS.test(bitsPart) || Number(bitsPart) > 32) throw new CidrParseError(`not a CIDR (prefix length must be 0-32): '${s}'`);
  const bits = Number(bitsPart);
  const network = (addr & MASKS[bits]) >>> 0;
  if (network !== addr && !opts.normalize) {
    throw new CidrParseError(`host bits set in '${s}' (the network is ${formatCidr(network, bits)})`);
  }
  return { network, bits, address: addr };
}

export function formatCidr(network: number, bits: number): string {
  return `${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.${network & 255}/${bits}`;
}
