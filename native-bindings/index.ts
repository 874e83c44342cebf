/**
 * @packageDocumentation
 * The OS packet I/O of isthmus: its own N-API addon (a Linux TUN device and batched IPv4
 * UDP), and the node:dgram fallback socket, all implementing the batch-shaped seams of
 * `common/packet-io.ts`. The addon is Linux-only and optional at runtime: check
 * `nativeAvailable()`, or let `openBestDatagramSocket` choose.
 *
 * @example
 * ```ts
 * const tun = openTun({ name: 'isth%d', address: '100.64.0.1/10' });
 * tun.onReceive((b) => { for (let i = 0; i < b.count; i++) handle(b.data, b.offsets[i], b.lengths[i]); });
 * const udp = openUdpSocket({ host: '0.0.0.0', port: 51820 });
 * ```
 */
import type { DatagramSocket } from '../common';
import { NativeTunDevice, type TunOptions } from './tun-device';
import { NativeUdpSocket, type UdpOptions } from './udp-socket';
import { openDgramSocket } from './dgram-socket';
import { loadNative } from './load';

export { nativeAvailable } from './load';
export { NativeBindingMissingError, NativeIoError, InvalidOptionError } from './errors';
export {
  NativeTunDevice, DEFAULT_TUN_OPTIONS, TUN_TAILROOM, parseTunAddress,
  VNET_HDR_LEN, tunOffloadSplit, tunOffloadCoalesce,
  type TunOptions, type TunStats,
} from './tun-device';
export { aead, AEAD_KEY_LENGTH, AEAD_TAG_LENGTH, type AeadBatch } from './aead';
export { NativeUdpSocket, DEFAULT_UDP_OPTIONS, type UdpOptions, type UdpStats } from './udp-socket';
export {
  RelayFastTable, FAST_POLICY_OFF, FAST_POLICY_ON, FAST_POLICY_LOADING, FAST_UNKNOWN, FAST_ALLOW, FAST_DENY,
  type RelayFastOptions, type RelayFastStats,
} from './relay-fast';
export { DgramSocket, openDgramSocket, type DgramSocketOptions } from './dgram-socket';
export { setBusyPoll, busyPollStats, BUSY_POLL_MAX_US, type BusyPollStats } from './busy-poll';

/**
 * Creates a TUN device (IFF_TUN|IFF_NO_PI), sets MTU and address, brings it up.
 * Throws NativeIoError (`code` EPERM/EACCES without CAP_NET_ADMIN, EBUSY for a taken
 * name, ...), InvalidOptionError (`code` EINVAL) for bad options, or
 * NativeBindingMissingError when the addon is not built.
 * The interface disappears on close() and on process exit.
 */
export function openTun(opts: TunOptions = {}): NativeTunDevice {
  return new NativeTunDevice(opts);
}

/** Binds a non-blocking IPv4 UDP socket; see UdpOptions. Errors as for openTun. */
export function openUdpSocket(opts: UdpOptions): NativeUdpSocket {
  return new NativeUdpSocket(opts);
}

/** Which implementation `openBestDatagramSocket` picked. */
export type SocketKind = 'native' | 'dgram';

/**
 * Open the native batched socket when the addon is built, else the node:dgram fallback
 * (the addon is optional at runtime). Bind errors (EADDRINUSE, EACCES, ...) are the
 * caller's to see, not a reason to fall back.
 */
export async function openBestDatagramSocket(opts: { host: string; port: number },
  onFallback?: (why: string) => void): Promise<{ socket: DatagramSocket; kind: SocketKind }> {
  try {
    loadNative();
  } catch (err) {
    onFallback?.((err as Error).message);
    return { socket: await openDgramSocket(opts), kind: 'dgram' };
  }
  return { socket: openUdpSocket({ host: opts.host, port: opts.port }), kind: 'native' };
}
