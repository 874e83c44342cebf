/**
 * Proxy users: who may use a gateway (SOCKS5, HTTP proxy, port exposure) and with which tags the
 * policy sees them. The contract only; the central, Redis-backed store is the gateway's.
 */

export interface ProxyUser {
  name: string;
  /** what the access policy sees as the source when this user dials or exposes */
  tags: string[];
}

export interface ProxyUserVerifier {
  /** The user, if `password` is theirs; null otherwise (unknown user, wrong password, revoked). */
  verify(name: string, password: string): Promise<ProxyUser | null>;
}
