/** IPv4 prefixes for configuration (not the hot path: see protocol/allowed-ips.ts for lookups). */
import { ipv4ToInt, intToIpv4 } from '../common/packet-io';

export interface Cidr {
  /** The address as written (host bits kept: "100.64.0.1/10" is an interface address). */
  address: string;
  bits: number;
  /** Network base, host-order uint32. */
  network: number;
}

export function prefixMask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

export function parseCidr(text: string): Cidr {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not an IPv4 prefix like 10.0.0.0/8`);
  const bits = Number(m[2]);
  if (bits > 32) throw new Error(`"${text}": prefix length must be 0-32`);
  const addr = ipv4ToInt(m[1]);
  return { address: m[1], bits, network: (addr & prefixMask(bits)) >>> 0 };
}

export function cidrContains(c: Cidr, addr: number): boolean {
  return ((addr & prefixMask(c.bits)) >>> 0) === c.network;
}

export function formatCidr(c: Cidr): string {
  return `${intToIpv4(c.network)}/${c.bits}`;
}
