/**
 * JSON schemas of every request (fastify validates them with ajv; additional properties are
 * rejected, types are never coerced — see api.ts for the ajv options).
 */
import { ADDR_PATTERN, MAX_ADDR_LEN } from '../common';
import { TAG_NAME } from '../policy';
import { MAX_TAG_LEN, MAX_TAGS } from './constants';
import { MAX_ORIGINAL_CIDRS } from './claim-rules';
import { PROXY_USER_NAME } from './proxy-users';

/** base64 of exactly `bytes` bytes (canonical padding, so 31 or 33 bytes never pass). */
const b64 = (bytes: number) => {
  const full = Math.floor(bytes / 3) * 4;
  const tail = bytes % 3 === 0 ? '' : bytes % 3 === 1 ? '[A-Za-z0-9+/][AQgw]==' : '[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=';
  return { type: 'string', pattern: `^[A-Za-z0-9+/]{${full}}${tail}$` } as const;
};
const ipv4 = { type: 'string', maxLength: MAX_ADDR_LEN, pattern: ADDR_PATTERN } as const;
const tag = { type: 'string', minLength: 1, maxLength: MAX_TAG_LEN, pattern: TAG_NAME.source } as const;
const tags = { type: 'array', items: tag, maxItems: MAX_TAGS, uniqueItems: true } as const;
/** Shape only; api.ts parses strictly (host bits set → 400 invalid-original-cidr). */
/** Parsed (strictly) by claim-rules.ts parseOriginalCidrs: 400 invalid-original-cidr names the value. */
const cidr = { type: 'string', maxLength: 18 } as const;
const hostname = { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$' } as const;
const secret = { type: 'string', minLength: 8, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' } as const;

export const joinBody = {
  type: 'object',
  additionalProperties: false,
  required: ['publicKey', 'challengeId', 'proof', 'originalIp', 'hostname'],
  properties: {
    publicKey: b64(32),
    challengeId: { type: 'string', minLength: 16, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' },
    proof: b64(32),
    token: secret,
    originalIp: ipv4,
    hostname,
    /** Accepted for old agents only when empty; otherwise 400 tags-not-allowed (api.ts). */
    tags,
    /** 'none': answer with the cursor only (no peers); the member follows GET /v1/peers/stream. */
    map: { type: 'string', enum: ['full', 'none'] },
  },
} as const;

export const peersStreamQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    /** The version of the map the member holds; absent: the opening frame carries the full map. */
    since: { type: 'string', pattern: '^\\d{1,15}$' },
  },
} as const;

export const peersQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    since: { type: 'string', pattern: '^\\d{1,15}$' },
    /** Long-poll limit in ms (capped by the server's). */
    wait: { type: 'string', pattern: '^\\d{1,6}$' },
  },
} as const;

export const tokenCreateBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    uses: { type: 'integer', anyOf: [{ const: -1 }, { minimum: 1, maximum: 1_000_000 }] },
    ttl: { anyOf: [{ type: 'integer', minimum: 1, maximum: 10 * 365 * 86400 }, { type: 'string', maxLength: 16, pattern: '^\\d+(\\.\\d+)?(ms|s|m|h|d)?$' }] },
    tags,
    originalCidrs: { type: 'array', items: cidr, maxItems: MAX_ORIGINAL_CIDRS, uniqueItems: true },
    ephemeral: { type: 'boolean' },
  },
} as const;

export const tokenIdParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^tok_[0-9a-f]{12}$' } },
} as const;

export const vipParams = {
  type: 'object',
  additionalProperties: false,
  required: ['vip'],
  properties: { vip: ipv4 },
} as const;

/** A member named by vip or hostname (the route's param is still called `vip`). */
export const memberParams = {
  type: 'object',
  additionalProperties: false,
  required: ['vip'],
  properties: { vip: { anyOf: [ipv4, hostname] } },
} as const;

export const removeQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { allowRejoin: { type: 'string', enum: ['true', 'false'] } },
} as const;

/** `GET /v1/nodes` filters; values are checked by node-filter.ts (400 invalid-filter naming the parameter). */
const filterValue = { anyOf: [{ type: 'string', maxLength: 64 }, { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 64 } }] } as const;
export const nodeListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { tag: filterValue, online: filterValue, relay: filterValue, original: filterValue },
} as const;

export const nodeTagsBody = {
  type: 'object',
  additionalProperties: false,
  properties: { add: tags, remove: tags },
} as const;

export const publicKeyBody = {
  type: 'object',
  additionalProperties: false,
  required: ['publicKey'],
  properties: { publicKey: b64(32) },
} as const;

export const emptyBody = { anyOf: [{ type: 'null' }, { type: 'object', additionalProperties: false, maxProperties: 0 }] } as const;

/** `POST /v1/policy/check`: each side a vip, original IP or hostname; port `tcp/N`, `udp/N` or `icmp`. */
export const policyCheckBody = {
  type: 'object',
  additionalProperties: false,
  required: ['from', 'to', 'port'],
  properties: {
    from: { type: 'string', minLength: 1, maxLength: 253 },
    to: { type: 'string', minLength: 1, maxLength: 253 },
    port: { type: 'string', minLength: 1, maxLength: 16 },
  },
} as const;

/** `POST /v1/reassert`: a membership record (membership-record.ts) and a fresh key proof ('reassert'). */
export const reassertBody = {
  type: 'object',
  additionalProperties: false,
  required: ['publicKey', 'challengeId', 'proof', 'record'],
  properties: {
    publicKey: b64(32),
    challengeId: { type: 'string', minLength: 16, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' },
    proof: b64(32),
    record: { type: 'string', minLength: 1, maxLength: 8192 },
  },
} as const;

/** Proxy users (proxy-user-routes.ts): the name rule is PROXY_USER_NAME (no `:`, it is the Basic user); at least one tag. */
const proxyUserName = { type: 'string', minLength: 1, maxLength: 64, pattern: PROXY_USER_NAME.source } as const;

export const proxyUserCreateBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'tags'],
  properties: { name: proxyUserName, tags: { ...tags, minItems: 1 } },
} as const;

export const proxyUserParams = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: proxyUserName },
} as const;
