/**
 * `GET /v1/nodes` filters (`isthmus node list --tag T --online --relay R --original CIDR`), as
 * query parameters; pure, so the API, the client and the tests share one reading:
 *
 *   tag=T        repeatable: the member carries every one of them
 *   online=true  the member holds a relay session (its `session:<vip>` record); false: it does not
 *   relay=R      its session is on relay R: the relay id (`r1`), or the relay address the member
 *                sends to (`10.90.0.1:7000`, or just the IP)
 *   original=C   its original IP lies in the IPv4 network C (`10.1.0.0/16`; a bare IP is a /32)
 *
 * Bad values are refused with a BadRequestError naming the parameter (400, never an empty list).
 */
import { contains, parseNetwork, tryParseAddr, type Prefix } from '../common';
import { TAG_NAME } from '../policy';
import { BadRequestError } from './errors';
import type { NodeView } from './types';

export interface NodeFilter {
  tags: string[];
  online?: boolean;
  relay?: string;
  original?: Prefix;
}

/** The query as fastify parsed it (a repeated parameter arrives as an array). */
export type NodeFilterQuery = Record<string, string | string[] | undefined>;

function single(q: NodeFilterQuery, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) throw new BadRequestError('invalid-filter', `${name}: give it once (got ${v.length} values)`);
  return v;
}

export function parseNodeFilter(q: NodeFilterQuery): NodeFilter {
  const f: NodeFilter = { tags: [] };
  const tags = q.tag === undefined ? [] : Array.isArray(q.tag) ? q.tag : [q.tag];
  for (const t of tags) {
    if (!TAG_NAME.test(t)) throw new BadRequestError('invalid-filter', `tag ${JSON.stringify(t)}: 1-64 characters of A-Z a-z 0-9 _ . : / = -`);
    f.tags.push(t);
  }
  const online = single(q, 'online');
  if (online !== undefined) {
    if (online !== 'true' && online !== 'false') throw new BadRequestError('invalid-filter', `online: want true or false, got ${JSON.stringify(online)}`);
    f.online = online === 'true';
  }
  const relay = single(q, 'relay');
  if (relay !== undefined) {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(relay)) throw new BadRequestError('invalid-filter', `relay ${JSON.stringify(relay)}: want a relay id or its address (IP or IP:PORT)`);
    f.relay = relay;
  }
  const original = single(q, 'original');
  if (original !== undefined) {
    const text = tryParseAddr(original) !== undefined ? `${original}/32` : original;
    try {
      f.original = parseNetwork(text);
    } catch (err) {
      throw new BadRequestError('invalid-filter', `original: ${(err as Error).message}`);
    }
  }
  return f;
}

/** What a client asks for: values as the user typed them (the server checks them). */
export interface NodeFilterInput {
  tags?: string[];
  online?: boolean;
  relay?: string;
  /** CIDR or IP text. */
  original?: string;
}

/** The query string of a filter (for the client), `''` for none. */
export function nodeFilterQuery(f: NodeFilterInput): string {
  const p = new URLSearchParams();
  for (const t of f.tags ?? []) p.append('tag', t);
  if (f.online !== undefined) p.set('online', String(f.online));
  if (f.relay !== undefined) p.set('relay', f.relay);
  if (f.original !== undefined) p.set('original', f.original);
  const s = p.toString();
  return s ? `?${s}` : '';
}

export function nodeMatches(n: NodeView, f: NodeFilter): boolean {
  for (const t of f.tags) if (!n.tags.includes(t)) return false;
  if (f.online !== undefined && (n.session !== undefined) !== f.online) return false;
  if (f.relay !== undefined) {
    const s = n.session;
    if (!s) return false;
    if (s.relayId !== f.relay && s.relayIp !== f.relay && `${s.relayIp}:${s.relayPort}` !== f.relay) return false;
  }
  if (f.original !== undefined) {
    const a = tryParseAddr(n.originalIp);
    if (a === undefined || !contains(f.original, a)) return false;
  }
  return true;
}
