/**
 * SOCKS5 wire codec (RFC 1928, RFC 1929 username/password). Pure: no sockets, no timers.
 *
 * Every parser takes the bytes received so far and answers one of
 *   { kind: 'more' }                 not enough bytes yet (caller bounds total size)
 *   { kind: 'ok', ..., used }        a complete message of `used` bytes
 *   { kind: 'bad', reply, reason }   malformed; `reply` is the REP code to send (if any)
 * Parsers never throw on any input.
 *
 * Greeting (client → server):
 *   +-----+----------+----------+
 *   | VER | NMETHODS | METHODS  |      VER = 0x05, NMETHODS >= 1
 *   |  1  |    1     | 1 to 255 |
 * Method selection (server → client):  | VER 0x05 | METHOD |
 *
 * Username/password sub-negotiation (RFC 1929):
 *   | VER 0x01 | ULEN | UNAME (1..255) | PLEN | PASSWD (1..255) |   reply: | 0x01 | STATUS |
 *
 * Request (client → server) and reply (server → client) share one layout:
 *   +-----+---------+-------+------+----------+----------+
 *   | VER | CMD/REP |  RSV  | ATYP | DST.ADDR | DST.PORT |
 *   |  1  |    1    | X'00' |  1   | variable |    2     |
 *   ATYP 0x01 IPv4 (4 bytes), 0x03 domain (1 length byte + name), 0x04 IPv6 (16 bytes)
 *
 * UDP datagram header (RFC 1928 §7):
 *   | RSV 2 | FRAG 1 | ATYP 1 | DST.ADDR | DST.PORT 2 | DATA |
 */

import { formatAddr, readAddr, tryParseAddr, writeAddr } from '../../common';

export const SOCKS_VERSION = 0x05;
export const AUTH_VERSION = 0x01;

export const Method = {
  NoAuth: 0x00,
  UserPass: 0x02,
  NoAcceptable: 0xff,
} as const;

export const Command = {
  Connect: 0x01,
  Bind: 0x02,
  UdpAssociate: 0x03,
} as const;

export const Atyp = {
  IPv4: 0x01,
  Domain: 0x03,
  IPv6: 0x04,
} as const;

export const Reply = {
  Succeeded: 0x00,
  GeneralFailure: 0x01,
  NotAllowed: 0x02,
  NetworkUnreachable: 0x03,
  HostUnreachable: 0x04,
  ConnectionRefused: 0x05,
  TtlExpired: 0x06,
  CommandNotSupported: 0x07,
  AddressTypeNotSupported: 0x08,
} as const;
export type ReplyCode = (typeof Reply)[keyof typeof Reply];

/** Largest greeting: VER + NMETHODS + 255 methods. */
export const MAX_GREETING = 2 + 255;
/** Largest auth request: VER + ULEN + 255 + PLEN + 255. */
export const MAX_AUTH = 3 + 255 + 255;
/** Largest request: VER CMD RSV ATYP + 1 + 255-byte domain + port. */
export const MAX_REQUEST = 4 + 1 + 255 + 2;

export type Parsed<T> = { kind: 'more' } | ({ kind: 'ok'; used: number } & T) | { kind: 'bad'; reply: ReplyCode; reason: string };

const MORE = { kind: 'more' } as const;
function bad(reply: ReplyCode, reason: string): { kind: 'bad'; reply: ReplyCode; reason: string } {
  return { kind: 'bad', reply, reason };
}

export function parseGreeting(b: Uint8Array): Parsed<{ methods: number[] }> {
  if (b.length < 1) return MORE;
  if (b[0] !== SOCKS_VERSION) return bad(Reply.GeneralFailure, 'bad version');
  if (b.length < 2) return MORE;
  const n = b[1]!;
  if (n === 0) return bad(Reply.GeneralFailure, 'no methods');
  if (b.length < 2 + n) return MORE;
  return { kind: 'ok', used: 2 + n, methods: Array.from(b.subarray(2, 2 + n)) };
}

export function encodeMethodSelection(method: number): Buffer {
  return Buffer.from([SOCKS_VERSION, method]);
}

export function parseUserPass(b: Uint8Array): Parsed<{ username: string; password: string }> {
  if (b.length < 1) return MORE;
  if (b[0] !== AUTH_VERSION) return bad(Reply.GeneralFailure, 'bad auth version');
  if (b.length < 2) return MORE;
  const ulen = b[1]!;
  if (ulen === 0) return bad(Reply.GeneralFailure, 'empty username');
  if (b.length < 3 + ulen) return MORE;
  const plen = b[2 + ulen]!;
  if (plen === 0) return bad(Reply.GeneralFailure, 'empty password');
  const used = 3 + ulen + plen;
  if (b.length < used) return MORE;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { kind: 'ok', used, username: buf.toString('utf8', 2, 2 + ulen), password: buf.toString('utf8', 3 + ulen, used) };
}

export function encodeUserPassReply(ok: boolean): Buffer {
  return Buffer.from([AUTH_VERSION, ok ? 0x00 : 0x01]);
}

export interface SocksAddress {
  atyp: number;
  /** dotted IPv4, domain name as sent, or IPv6 in full colon form */
  host: string;
  port: number;
}

/** Reads ATYP + address + port at `off`; `more` if truncated. */
function parseAddress(b: Uint8Array, off: number): Parsed<SocksAddress> {
  if (b.length < off + 1) return MORE;
  const atyp = b[off]!;
  let host: string;
  let end: number;
  if (atyp === Atyp.IPv4) {
    end = off + 1 + 4;
    if (b.length < end + 2) return MORE;
    host = formatAddr(readAddr(b, off + 1));
  } else if (atyp === Atyp.Domain) {
    if (b.length < off + 2) return MORE;
    const len = b[off + 1]!;
    if (len === 0) return bad(Reply.GeneralFailure, 'empty domain');
    end = off + 2 + len;
    if (b.length < end + 2) return MORE;
    host = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1', off + 2, end);
  } else if (atyp === Atyp.IPv6) {
    end = off + 1 + 16;
    if (b.length < end + 2) return MORE;
    const parts: string[] = [];
    for (let i = 0; i < 8; i++) parts.push(((b[off + 1 + 2 * i]! << 8) | b[off + 2 + 2 * i]!).toString(16));
    host = parts.join(':');
  } else {
    return bad(Reply.AddressTypeNotSupported, `unknown address type ${atyp}`);
  }
  const port = (b[end]! << 8) | b[end + 1]!;
  return { kind: 'ok', used: end + 2 - off, atyp, host, port };
}

export function parseRequest(b: Uint8Array): Parsed<{ cmd: number } & SocksAddress> {
  if (b.length < 1) return MORE;
  if (b[0] !== SOCKS_VERSION) return bad(Reply.GeneralFailure, 'bad version');
  if (b.length < 3) return MORE;
  if (b[2] !== 0) return bad(Reply.GeneralFailure, 'reserved byte not zero');
  const a = parseAddress(b, 3);
  if (a.kind !== 'ok') return a;
  return { kind: 'ok', used: 3 + a.used, cmd: b[1]!, atyp: a.atyp, host: a.host, port: a.port };
}

/** Encodes ATYP + address + port; an IPv4 host becomes ATYP 1, anything else a domain. */
function encodeAddress(host: string, port: number): Buffer {
  const addr = tryParseAddr(host);
  if (addr !== undefined) {
    const out = Buffer.from([Atyp.IPv4, 0, 0, 0, 0, (port >>> 8) & 255, port & 255]);
    writeAddr(out, 1, addr);
    return out;
  }
  const name = Buffer.from(host, 'latin1').subarray(0, 255);
  return Buffer.concat([Buffer.from([Atyp.Domain, name.length]), name, Buffer.from([(port >>> 8) & 255, port & 255])]);
}

export function encodeReply(rep: number, bindHost = '0.0.0.0', bindPort = 0): Buffer {
  return Buffer.concat([Buffer.from([SOCKS_VERSION, rep, 0x00]), encodeAddress(bindHost, bindPort)]);
}

export function encodeRequest(cmd: number, host: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([SOCKS_VERSION, cmd, 0x00]), encodeAddress(host, port)]);
}

/** UDP header; `data` is a view into `b` (no copy). Fragmented datagrams are refused. */
export function parseUdpDatagram(b: Uint8Array): Parsed<SocksAddress & { data: Uint8Array }> {
  if (b.length < 4) return bad(Reply.GeneralFailure, 'short datagram');
  if (b[0] !== 0 || b[1] !== 0) return bad(Reply.GeneralFailure, 'reserved bytes not zero');
  if (b[2] !== 0) return bad(Reply.GeneralFailure, 'fragmented datagram');
  const a = parseAddress(b, 3);
  if (a.kind === 'more') return bad(Reply.GeneralFailure, 'truncated header');
  if (a.kind === 'bad') return a;
  const used = 3 + a.used;
  return { kind: 'ok', used, atyp: a.atyp, host: a.host, port: a.port, data: b.subarray(used) };
}

export function encodeUdpHeader(host: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(host, port)]);
}
