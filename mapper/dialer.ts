/**
 * Dialing a member: on a member host the agent's TUN routes virtual IPs, so to the mapper a
 * member is just `net.connect(vip, port)`. Injectable so tests and other transports can swap it.
 */
import net from 'node:net';

export type Dialer = (ip: string, port: number, timeoutMs: number) => Promise<net.Socket>;

export class DialTimeoutError extends Error {
  override name = 'DialTimeoutError';
  readonly code = 'ETIMEDOUT';
  constructor(ip: string, port: number, ms: number) {
    super(`connect to ${ip}:${port} timed out after ${ms} ms`);
  }
}

export const netDialer: Dialer = (ip, port, timeoutMs) => new Promise((resolve, reject) => {
  const s = net.connect({ host: ip, port, noDelay: true, allowHalfOpen: true });
  const t = setTimeout(() => { s.destroy(); reject(new DialTimeoutError(ip, port, timeoutMs)); }, timeoutMs);
  s.once('connect', () => { clearTimeout(t); s.removeListener('error', onErr); resolve(s); });
  const onErr = (err: Error) => { clearTimeout(t); s.destroy(); reject(err); };
  s.once('error', onErr);
});

/** Dial failure class, shared by the SOCKS5 and HTTP fronts to pick their codes. */
export type DialFailure = 'refused' | 'timeout' | 'host-unreachable' | 'net-unreachable' | 'other';

export function classifyDialError(err: unknown): DialFailure {
  switch ((err as { code?: string }).code) {
    case 'ECONNREFUSED': return 'refused';
    case 'ETIMEDOUT': return 'timeout';
    case 'EHOSTUNREACH': case 'EHOSTDOWN': return 'host-unreachable';
    case 'ENETUNREACH': case 'ENETDOWN': return 'net-unreachable';
    default: return 'other';
  }
}
