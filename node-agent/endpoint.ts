/**
 * Where a peer's WireGuard messages go on the outside: straight to a UDP address (a plain
 * WireGuard peer, or another member reachable directly), or through the relay, addressed
 * by the peer's overlay address. Like WireGuard, the endpoint follows the last
 * authenticated packet (roaming).
 */
export const EndpointKind = { Direct: 0, Relay: 1 } as const;
export type EndpointKind = (typeof EndpointKind)[keyof typeof EndpointKind];

export class Endpoint {
  constructor(
    public kind: EndpointKind,
    /** Direct: IPv4 host-order uint32 and UDP port. */
    public ip = 0,
    public port = 0,
    /** Relay: the peer's overlay address, host-order uint32. */
    public vip = 0,
  ) {}

  static direct(ip: number, port: number): Endpoint {
    return new Endpoint(EndpointKind.Direct, ip, port, 0);
  }

  static relay(vip: number): Endpoint {
    return new Endpoint(EndpointKind.Relay, 0, 0, vip);
  }

  /** Overwrite in place from another endpoint (no allocation on the receive path). */
  assign(kind: EndpointKind, ip: number, port: number, vip: number): void {
    this.kind = kind;
    this.ip = ip;
    this.port = port;
    this.vip = vip;
  }

  equals(kind: EndpointKind, ip: number, port: number, vip: number): boolean {
    return this.kind === kind && (kind === EndpointKind.Relay ? this.vip === vip : this.ip === ip && this.port === port);
  }
}

/**
 * The outside send path the engine writes through (the agent adds relay framing). There
 * are `DEVICE_HEADROOM - 16` free bytes in front of `off` for a relay header.
 */
export interface OutsideSender {
  /** Send `buf[off, off+len)` to `ep`; the bytes are copied before return. */
  send(ep: Endpoint, buf: Uint8Array, off: number, len: number): void;
  /** Send `buf[off, off+len)` to `ep` without a copy: the socket reads the bytes at its
   *  next flush(), and the caller does not change them until then (DatagramSocket.sendInPlace).
   *  The bytes in front of `off` may be overwritten with a relay header. */
  sendInPlace(ep: Endpoint, buf: Uint8Array, off: number, len: number): void;
}

/** The inside (TUN) write path; the same ownership rules as TunDevice.write / writeInPlace. */
export interface InsideWriter {
  /** Write `buf[off, off+len)`; copied before return. */
  write(buf: Uint8Array, off: number, len: number): void;
  /** Write `buf[off, off+len)` at the TUN's next flush(), without a copy. */
  writeInPlace(buf: Uint8Array, off: number, len: number): void;
}
