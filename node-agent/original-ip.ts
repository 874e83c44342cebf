/**
 * The default `--original-ip`: the IPv4 address of the interface that holds the default
 * route, i.e. the address this host had on the flat network. Read from /proc/net/route.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

/** Pure: the interface of the default route in /proc/net/route text, if any. */
export function defaultRouteInterface(procNetRoute: string): string | undefined {
  for (const line of procNetRoute.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; destination and mask 0 = default
    if (f.length >= 8 && f[1] === '00000000' && f[7] === '00000000') return f[0];
  }
  return undefined;
}

export function detectOriginalIp(): string {
  let iface: string | undefined;
  try {
    iface = defaultRouteInterface(readFileSync('/proc/net/route', 'utf8'));
  } catch {
    iface = undefined;
  }
  const addrs = iface ? networkInterfaces()[iface] : undefined;
  const v4 = addrs?.find((a) => a.family === 'IPv4' && !a.internal);
  if (!v4) throw new Error('cannot find this host\'s address (no IPv4 default route): pass --original-ip');
  return v4.address;
}
