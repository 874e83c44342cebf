/**
 * Lua scripts: every state change of the registry is one script, so it is atomic across any
 * number of coordinators sharing a Redis (single Redis or Sentinel; not Redis Cluster: the
 * scripts touch keys they derive from the prefix, which Cluster cannot route).
 *
 * Every script gets the common ARGV head: [1] prefix, [2] now (Unix ms), [3] quarantine ms,
 * [4] change-feed maxlen. Each change does INCR P:version, XADD P:changes <version>-0 and
 * PUBLISH P:events in the same script, so versions in the stream are contiguous.
 *
 * Key names and event types are not written here: `K` (key builders) and `EV` (event types)
 * are generated from common/redis-schema.ts, so the scripts and the TypeScript readers cannot
 * drift apart. `emit` publishes a `NodeEvent` ({type, vip, version}).
 */
import { EventType, KEY_PATTERNS, keyHead, type KeyName } from '../common/redis-schema';

function luaString(s: string): string {
  if (!/^[A-Za-z0-9:_.-]*$/.test(s)) throw new Error(`redis-schema name not safe to embed in Lua: ${s}`);
  return `'${s}'`;
}

/** `K.<name>` for every key of the schema (a string, or a function of its parameter), and `EV.<Name>`. */
export function luaSchema(): string {
  const lines = ['local K = {}'];
  for (const name of Object.keys(KEY_PATTERNS) as KeyName[]) {
    const { head, param } = keyHead(name);
    lines.push(param ? `K.${name} = function(x) return P .. ${luaString(head)} .. x end` : `K.${name} = P .. ${luaString(head)}`);
  }
  lines.push(`local EV = { ${Object.entries(EventType).map(([k, v]) => `${k} = ${luaString(v)}`).join(', ')} }`);
  return lines.join('\n') + '\n';
}

const COMMON = `
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local QUARANTINE = tonumber(ARGV[3])
local MAXLEN = ARGV[4]
` + luaSchema() + `
local function n2ip(n)
  return string.format('%d.%d.%d.%d', math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

local function emit(typ, vip)
  local v = redis.call('INCR', K.version)
  redis.call('XADD', K.changes, 'MAXLEN', '~', MAXLEN, v .. '-0', 'type', typ, 'vip', vip)
  redis.call('PUBLISH', K.events, cjson.encode({ type = typ, vip = vip, version = v }))
  return v
end

local function delIfPoints(key, vip)
  if redis.call('GET', key) == vip then redis.call('DEL', key) end
end

-- Remove a member: its keys go, its vip enters quarantine. Returns the version or false.
local function removeNode(vip)
  local n = redis.call('HMGET', K.node(vip), 'pub', 'orig', 'hostname')
  if not n[1] then return false end
  redis.call('DEL', K.node(vip))
  delIfPoints(K.key(n[1]), vip)
  if n[2] then delIfPoints(K.orig(n[2]), vip) end
  if n[3] then delIfPoints(K.host(n[3]), vip) end
  redis.call('SREM', K.nodes, vip)
  redis.call('SREM', K.ephemeral, vip)
  redis.call('ZADD', K.ipamQuarantine, NOW + QUARANTINE, vip)
  return emit(EV.NodeRemoved, vip)
end

local function jsonList(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end
`;

/**
 * Join. ARGV after the head: [5] cidr base (uint32), [6] first offset, [7] last offset,
 * [8] public key, [9] original IP, [10] hostname, [11] requested tags JSON, [12] join-token
 * sha256 or '', [13] challenge id, [14] original-IP grace ms, [15] session-token sha256,
 * [16] session TTL ms.
 * Returns {'ok', vip, version, created(0|1)} or {'err', code, detail}. All checks run before
 * the first write, so a refused join changes nothing.
 */
export const JOIN_LUA = COMMON + `
local base, first, last = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local pub, orig, hostname, reqTags = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local tokenHash, challengeId, grace = ARGV[12], ARGV[13], tonumber(ARGV[14])
local sessionHash, sessionTtl = ARGV[15], ARGV[16]

if redis.call('EXISTS', K.challenge(challengeId)) == 0 then return { 'err', 'challenge-unknown', '' } end

local vip = redis.call('GET', K.key(pub))
local granted, ephemeral = '[]', '0'
local tokenKey = false
if vip then
  local n = redis.call('HMGET', K.node(vip), 'granted', 'ephemeral')
  granted = n[1] or '[]'
  ephemeral = n[2] or '0'
else
  if tokenHash == '' then return { 'err', 'token-required', '' } end
  tokenKey = K.token(tokenHash)
  local t = redis.call('HMGET', tokenKey, 'usesLeft', 'expiresAt', 'tags', 'ephemeral')
  if not t[1] then return { 'err', 'token-unknown', '' } end
  local exp = tonumber(t[2])
  if exp > 0 and exp <= NOW then return { 'err', 'token-expired', '' } end
  if tonumber(t[1]) == 0 then return { 'err', 'token-exhausted', '' } end
  granted = t[3] or '[]'
  ephemeral = t[4] or '0'
end

local holder = redis.call('GET', K.orig(orig))
if holder and holder ~= vip then
  if redis.call('EXISTS', K.session(holder)) == 1 then
    return { 'err', 'original-ip-taken', 'held by ' .. holder .. ', which has a live relay session' }
  end
  local seen = tonumber(redis.call('HGET', K.node(holder), 'lastSeen') or '0')
  if seen + grace > NOW then
    return { 'err', 'original-ip-taken', 'held by ' .. holder .. ', seen ' .. math.floor((NOW - seen) / 1000) .. ' s ago' }
  end
end

local offset = false
local fromQuarantine = false
if not vip then
  offset = tonumber(redis.call('GET', K.ipamCursor) or first)
  if offset > last then
    local q = redis.call('ZRANGEBYSCORE', K.ipamQuarantine, '-inf', NOW, 'LIMIT', 0, 1)
    if #q == 0 then return { 'err', 'pool-exhausted', '' } end
    fromQuarantine = q[1]
  end
end

-- From here on: writes only.
if holder and holder ~= vip then
  if not removeNode(holder) then redis.call('DEL', K.orig(orig)) end
end

local created = 0
if not vip then
  created = 1
  if fromQuarantine then
    vip = fromQuarantine
    redis.call('ZREM', K.ipamQuarantine, vip)
  else
    vip = n2ip(base + offset)
    redis.call('SET', K.ipamCursor, offset + 1)
  end
  local left = tonumber(redis.call('HGET', tokenKey, 'usesLeft'))
  if left > 0 then redis.call('HINCRBY', tokenKey, 'usesLeft', -1) end
else
  local old = redis.call('HMGET', K.node(vip), 'orig', 'hostname')
  if old[1] and old[1] ~= orig then delIfPoints(K.orig(old[1]), vip) end
  if old[2] and old[2] ~= hostname then delIfPoints(K.host(old[2]), vip) end
end

local set, tags = {}, {}
for _, t in ipairs(cjson.decode(granted)) do set[t] = true end
for _, t in ipairs(cjson.decode(reqTags)) do set[t] = true end
for t in pairs(set) do tags[#tags + 1] = t end
table.sort(tags)

local nodeKey = K.node(vip)
if created == 1 then redis.call('HSET', nodeKey, 'created', NOW) end
redis.call('HSET', nodeKey, 'pub', pub, 'orig', orig, 'hostname', hostname, 'tags', jsonList(tags),
  'granted', granted, 'ephemeral', ephemeral, 'lastSeen', NOW)
redis.call('SET', K.key(pub), vip)
redis.call('SET', K.orig(orig), vip)
redis.call('SET', K.host(hostname), vip)
redis.call('SADD', K.nodes, vip)
if ephemeral == '1' then redis.call('SADD', K.ephemeral, vip) end
redis.call('DEL', K.challenge(challengeId))
redis.call('SET', K.sessionToken(sessionHash), vip .. ' ' .. pub, 'PX', sessionTtl)
local typ = EV.NodeChanged
if created == 1 then typ = EV.NodeUp end
local v = emit(typ, vip)
return { 'ok', vip, v, created }
`;

/** Remove one member. ARGV[5] vip. Returns the version, or 0 when no such member. */
export const REMOVE_LUA = COMMON + `
local v = removeNode(ARGV[5])
if not v then return 0 end
return v
`;

/**
 * Bearer check + "seen": ARGV[5] session-token sha256. Returns vip or false. The token holds
 * "vip pub"; it is valid only while P:key:<pub> still points at that vip (a removed member's
 * tokens die with it).
 */
export const AUTH_LUA = COMMON + `
local s = redis.call('GET', K.sessionToken(ARGV[5]))
if not s then return false end
local sp = string.find(s, ' ', 1, true)
local vip, pub = string.sub(s, 1, sp - 1), string.sub(s, sp + 1)
if redis.call('GET', K.key(pub)) ~= vip then return false end
redis.call('HSET', K.node(vip), 'lastSeen', NOW)
return vip
`;

/**
 * Ephemeral sweep, idempotent (any coordinator may run it at any time). ARGV[5] timeout ms.
 * A live P:session:<vip> counts as "seen now"; a member unseen for longer than the timeout
 * is removed. Returns the removed vips.
 */
export const SWEEP_LUA = COMMON + `
local timeout = tonumber(ARGV[5])
local removed = {}
for _, vip in ipairs(redis.call('SMEMBERS', K.ephemeral)) do
  local nodeKey = K.node(vip)
  if redis.call('EXISTS', K.session(vip)) == 1 then
    redis.call('HSET', nodeKey, 'lastSeen', NOW)
  else
    local seen = tonumber(redis.call('HGET', nodeKey, 'lastSeen') or '0')
    if NOW - seen > timeout then
      if removeNode(vip) then removed[#removed + 1] = vip else redis.call('SREM', K.ephemeral, vip) end
    end
  end
end
return removed
`;

/** Consistent snapshot: {version, vip1, {k, v, ...}, vip2, ...}. */
export const SNAPSHOT_LUA = COMMON + `
local out = { tonumber(redis.call('GET', K.version) or '0') }
for _, vip in ipairs(redis.call('SMEMBERS', K.nodes)) do
  out[#out + 1] = vip
  out[#out + 1] = redis.call('HGETALL', K.node(vip))
end
return out
`;
