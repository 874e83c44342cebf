/** IPv4 prefixes as configs and flags give them, on the shared strict parser (common/cidr.ts). */
import { intToIpv4 } from '../common/packet-io';
import { formatCidr as formatNetwork, parseCidr as parseStrict, prefixMask } from '../common/cidr';

export { prefixMask };

export interface Cidr {
  /** The address as written (host bits kept: "100.64.0.1/10" is an interface address). */
  address: string;
  bits: number;
  /** Network base, host-order uint32. */
  network: number;
}

/** Parse 'a.b.c.d/n'; host bits are allowed (an interface address) and kept in `address`. */
export function parseCidr(text: string): Cidr {
  const c = parseStrict(text.trim(), { normalize: true });
  return { address: intToIpv4(c.address), bits: c.bits, network: c.network };
}

export function cidrContains(c: Cidr, addr: number): boolean {
  return ((addr & prefixMask(c.bits)) >>> 0) === c.network;
}

export function formatCidr(c: Cidr): string {
  return formatNetwork(c.network, c.bits);
}
