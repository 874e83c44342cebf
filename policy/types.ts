/**
 * The parsed policy, as `parsePolicy` returns it and `formatPolicy` writes it back.
 *
 * A rule lets members matching `from` open flows to members matching `to` on `ports`; the
 * replies of those flows come back. It does not let `to` open flows to `from`. Rules only
 * allow: with a policy set, what no rule allows is denied; with no policy (null) every member
 * reaches every member.
 */

/** `*` (every member, tagged or not) or `tag:NAME` (members carrying tag NAME). */
export type Selector = { kind: 'any' } | { kind: 'tag'; tag: string };

/**
 * `*` (every protocol and port, including protocols other than TCP/UDP/ICMP), `icmp`
 * (echo requests; replies and errors always come back), or a TCP/UDP port range
 * `first..last` inclusive, 1 ≤ first ≤ last ≤ 65535 (`tcp/22` is first = last = 22).
 */
export type PortSpec =
  | { proto: 'any' }
  | { proto: 'icmp' }
  | { proto: 'tcp' | 'udp'; first: number; last: number };

export interface Rule {
  from: Selector[];
  to: Selector[];
  ports: PortSpec[];
}

export interface Policy {
  rules: Rule[];
}

/** Protocol of a flow being asked about (`canOpen`); `other` is any IP protocol but these three. */
export type FlowProto = 'tcp' | 'udp' | 'icmp' | 'other';
