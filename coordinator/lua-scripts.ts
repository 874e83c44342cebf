/**
 * Lua scripts: every state change of the registry is one script, so it is atomic across any
 * number of coordinators sharing a Redis (single Redis or Sentinel; not Redis Cluster: the
 * scripts touch keys they derive from the prefix, which Cluster cannot route).
 *
 * Every script gets the common ARGV head: [1] prefix, [2] now (Unix ms), [3] quarantine ms,
 * [4] change-feed maxlen. Each change does INCR P:version, XADD P:changes <version>-0 and
 * PUBLISH P:events in the same script, so versions in the stream are contiguous.
 * Stream entries carry the state before the change, so a coordinator can tell what any member
 * saw at any version (scoped peer maps, peer-map-cache.ts): `node-changed` and `node-removed`
 * carry `tags` (the member's tags before, JSON), `policy-changed` carries `prev` (the policy
 * text before, '' for none) and no `vip`.
 *
 * Key names and event types are not written here: `K` (key builders) and `EV` (event types)
 * are generated from common/redis-schema.ts, so the scripts and the TypeScript readers cannot
 * drift apart. `emit` publishes a `NodeEvent` ({type, vip, version}).
 */
import { CASE_INSENSITIVE_KEYS, EventType, KEY_PATTERNS, keyHead, type KeyName } from '../common';
import { MAX_RECORD_TTL_MS } from './constants';

function luaString(s: string): string {
  if (!/^[A-Za-z0-9:_.-]*$/.test(s)) throw new Error(`redis-schema name not safe to embed in Lua: ${s}`);
  return `'${s}'`;
}

/** `K.<name>` for every key of the schema (a string, or a function of its parameter), and `EV.<Name>`. */
export function luaSchema(): string {
  const lines = ['local K = {}'];
  for (const name of Object.keys(KEY_PATTERNS) as KeyName[]) {
    const { head, param } = keyHead(name);
    const x = CASE_INSENSITIVE_KEYS.has(name) ? 'string.lower(x)' : 'x';
    lines.push(param ? `K.${name} = function(x) return P .. ${luaString(head)} .. ${x} end` : `K.${name} = P .. ${luaString(head)}`);
  }
  lines.push(`local EV = { ${Object.entries(EventType).map(([k, v]) => `${k} = ${luaString(v)}`).join(', ')} }`);
  return lines.join('\n') + '\n';
}

const COMMON = `
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local QUARANTINE = tonumber(ARGV[3])
local MAXLEN = ARGV[4]
local DEPARTED_TTL = ${MAX_RECORD_TTL_MS}
` + luaSchema() + `
local function n2ip(n)
  return string.format('%d.%d.%d.%d', math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

-- The lookups that find member \`vip\`: by key, original IP, hostname; in the member sets.
local function indexMember(vip, pub, orig, hostname, ephemeral)
  redis.call('SET', K.key(pub), vip)
  redis.call('SET', K.orig(orig), vip)
  redis.call('SET', K.host(hostname), vip)
  redis.call('SADD', K.nodes, vip)
  if ephemeral == '1' then redis.call('SADD', K.ephemeral, vip) end
end

-- Spend the challenge and give the member its session token.
local function admit(vip, pub, challengeNonce, challengeUsedTtl, sessionHash, sessionTtl)
  redis.call('SET', K.challengeUsed(challengeNonce), '1', 'PX', challengeUsedTtl)
  redis.call('SET', K.sessionToken(sessionHash), vip .. ' ' .. pub, 'PX', sessionTtl)
end

-- The refusal when the challenge was used already or an admin removed the key; nil otherwise.
local function challengeUsedOrKeyRemoved(challengeNonce, pub)
  if redis.call('EXISTS', K.challengeUsed(challengeNonce)) == 1 then return { 'err', 'challenge-unknown', '' } end
  local removed = redis.call('HGET', K.removedKeys, pub)
  if removed then
    local r = cjson.decode(removed)
    return { 'err', 'key-removed', 'it was ' .. tostring(r.vip) .. ' (' .. tostring(r.hostname) .. '), removed at ' .. tostring(r.removedAt) .. ' ms' }
  end
  return nil
end

-- The refusal when a live member other than \`vip\` holds original IP \`orig\` or \`hostname\`; nil if free.
local function heldByAnother(vip, orig, hostname)
  local holder = redis.call('GET', K.orig(orig))
  if holder and holder ~= vip then
    local h = redis.call('HMGET', K.node(holder), 'pub', 'hostname')
    if h[1] then return { 'err', 'original-ip-taken', orig .. ' is held by ' .. holder .. ' (' .. (h[2] or '') .. ')' } end
  end
  holder = redis.call('GET', K.host(hostname))
  if holder and holder ~= vip then
    local h = redis.call('HMGET', K.node(holder), 'pub', 'orig')
    if h[1] then return { 'err', 'hostname-taken', hostname .. ' is held by ' .. holder .. ' (original IP ' .. (h[2] or '') .. ')' } end
  end
  return nil
end

-- prevTags: the member's tags (JSON) before this change; nil for node-up.
local function emit(typ, vip, prevTags)
  local v = redis.call('INCR', K.version)
  if prevTags then
    redis.call('XADD', K.changes, 'MAXLEN', '~', MAXLEN, v .. '-0', 'type', typ, 'vip', vip, 'tags', prevTags)
  else
    redis.call('XADD', K.changes, 'MAXLEN', '~', MAXLEN, v .. '-0', 'type', typ, 'vip', vip)
  end
  redis.call('PUBLISH', K.events, cjson.encode({ type = typ, vip = vip, version = v }))
  return v
end

local function delIfPoints(key, vip)
  if redis.call('GET', key) == vip then redis.call('DEL', key) end
end

-- Remove a member: its keys go, its vip enters quarantine. With \`ban\`, its public key is
-- recorded in P:removed-keys so later joins with it are refused until an admin allows it.
-- Returns the version or false.
local function removeNode(vip, ban)
  local n = redis.call('HMGET', K.node(vip), 'pub', 'orig', 'hostname', 'tags')
  if not n[1] then return false end
  redis.call('DEL', K.node(vip))
  delIfPoints(K.key(n[1]), vip)
  if n[2] then delIfPoints(K.orig(n[2]), vip) end
  if n[3] then
    delIfPoints(K.host(n[3]), vip)
  end
  redis.call('SREM', K.nodes, vip)
  redis.call('SREM', K.ephemeral, vip)
  redis.call('ZADD', K.ipamQuarantine, NOW + QUARANTINE, vip)
  -- Records issued before now can no longer re-assert this key (membership-record.ts).
  redis.call('SET', K.departed(n[1]), NOW, 'PX', DEPARTED_TTL)
  if ban then
    redis.call('HSET', K.removedKeys, n[1], cjson.encode({ vip = vip, hostname = n[3] or '', removedAt = NOW }))
  end
  return emit(EV.NodeRemoved, vip, n[4] or '[]')
end

-- A uint32 address inside a 'a.b.c.d/n' prefix (Lua numbers are doubles: exact up to 2^53).
local function inPrefix(addr, cidr)
  local a, b, c, d, bits = string.match(cidr, '^(%d+)%.(%d+)%.(%d+)%.(%d+)/(%d+)$')
  if not a then return false end
  local size = 2 ^ (32 - tonumber(bits))
  local net = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
  return math.floor(addr / size) == math.floor(net / size)
end

local function jsonList(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end

-- Versions of a rebuilt state start above every version the lost one can have had (they are
-- Unix ms), so every coordinator's cache and every member's \`since\` falls back to a full map.
local function raiseVersion()
  local v = tonumber(redis.call('GET', K.version) or '0')
  if v < NOW then redis.call('SET', K.version, NOW) end
end

-- Hold new allocations for graceMs (members re-assert first); once per generation.
local function startHold(graceMs)
  redis.call('HSET', K.deployment, 'holdStarted', '1', 'rebuiltAt', NOW)
  if graceMs > 0 then redis.call('SET', K.allocationHold, '1', 'PX', graceMs) end
  raiseVersion()
end

-- The state generation (P:deployment). Missing here (every coordinator writes it when it
-- starts): Redis lost its data while we ran. Start a new generation and hold new allocations.
-- Returns the generation and whether this call found the state gone.
local function ensureGeneration(newGen, graceMs)
  local g = redis.call('HGET', K.deployment, 'generation')
  if g then return g, false end
  redis.call('HSET', K.deployment, 'generation', newGen, 'createdAt', NOW)
  startHold(graceMs)
  return newGen, true
end
`;

/**
 * Join. ARGV after the head: [5] cidr base (uint32), [6] first offset, [7] last offset,
 * [8] public key, [9] original IP, [10] hostname, [11] original IP as uint32, [12] join-token
 * sha256 or '', [13] the challenge's nonce (base64url; coordinator/challenge-token.ts), [14] '1'
 * when the original IP is the address the join request comes from, else '0', [15] session-token
 * sha256, [16] session TTL ms, [17] TTL ms of the challenge's used marker, [18] a new random
 * generation id and [19] the re-assert grace ms (both used only if the state is found gone:
 * ensureGeneration, which is the one write that may precede a refusal). The API checked the
 * challenge id and the key proof; this script makes the challenge single-use.
 * Returns {'ok', vip, version, created(0|1), generation, tags JSON, cidrs JSON, ephemeral '1'|'0'}
 * (what a membership record needs besides the request's fields, as this script left them) or
 * {'err', code, detail}; a re-join that changes nothing returns the current version and emits no event. All checks run before
 * the first write, so a refused join changes nothing. The stateless checks (overlay CIDR,
 * special-purpose addresses, no self-asserted tags) ran in the API before this script.
 *
 * Identity rules (docs/STATE.md): a key an admin removed is refused; the original IP must be
 * the join's source address or inside a prefix granted by the token (a re-join by key: the
 * prefixes granted at its first join, kept on the member as \`cidrs\`); an original IP or a
 * hostname (case-insensitive) held by another member is refused, never taken over. Tags are
 * set from the token at the first join and changed only by an admin (TAG_LUA).
 */
export const JOIN_LUA = COMMON + `
local base, first, last = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local pub, orig, hostname, origNum = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
local tokenHash, challengeNonce, fromSource = ARGV[12], ARGV[13], ARGV[14] == '1'
local sessionHash, sessionTtl, challengeUsedTtl = ARGV[15], ARGV[16], ARGV[17]

local generation = ensureGeneration(ARGV[18], tonumber(ARGV[19]))
local refused = challengeUsedOrKeyRemoved(challengeNonce, pub)
if refused then return refused end


local vip = redis.call('GET', K.key(pub))
local granted, ephemeral, cidrs = '[]', '0', '[]'
local tokenKey = false
if vip then
  local n = redis.call('HMGET', K.node(vip), 'granted', 'ephemeral', 'cidrs')
  granted = n[1] or '[]'
  ephemeral = n[2] or '0'
  cidrs = n[3] or '[]'
else
  if tokenHash == '' then return { 'err', 'token-required', '' } end
  tokenKey = K.token(tokenHash)
  local t = redis.call('HMGET', tokenKey, 'usesLeft', 'expiresAt', 'tags', 'ephemeral', 'cidrs')
  if not t[1] then return { 'err', 'token-unknown', '' } end
  local exp = tonumber(t[2])
  if exp > 0 and exp <= NOW then return { 'err', 'token-expired', '' } end
  if tonumber(t[1]) == 0 then return { 'err', 'token-exhausted', '' } end
  granted = t[3] or '[]'
  ephemeral = t[4] or '0'
  cidrs = t[5] or '[]'
end

if not fromSource then
  local ok = false
  local list = cjson.decode(cidrs)
  for _, c in ipairs(list) do
    if inPrefix(origNum, c) then ok = true break end
  end
  if not ok then
    local allowed = 'none'
    if #list > 0 then allowed = table.concat(list, ', ') end
    return { 'err', 'original-ip-not-allowed', orig .. ' is not the address this join comes from; prefixes allowed for this member: ' .. allowed }
  end
end

local taken = heldByAnother(vip, orig, hostname)
if taken then return taken end

local offset = false
local fromQuarantine = false
if not vip then
  local held = redis.call('PTTL', K.allocationHold)
  if held > 0 then return { 'err', 'allocations-held', tostring(held) } end
  offset = tonumber(redis.call('GET', K.ipamCursor) or first)
  -- Never an address a member holds (after a rebuild, re-asserted members hold addresses
  -- the cursor has not passed yet).
  while offset <= last and redis.call('EXISTS', K.node(n2ip(base + offset))) == 1 do offset = offset + 1 end
  if offset > last then
    local q = redis.call('ZRANGEBYSCORE', K.ipamQuarantine, '-inf', NOW, 'LIMIT', 0, 1)
    if #q == 0 then return { 'err', 'pool-exhausted', '' } end
    fromQuarantine = q[1]
  end
end

-- From here on: writes only.
local created = 0
local nodeKey
local prevTags = nil
local tagsNow
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
  nodeKey = K.node(vip)
  -- Tags: the token's, sorted; from now on only an admin changes them.
  local tags = cjson.decode(granted)
  table.sort(tags)
  tagsNow = jsonList(tags)
  redis.call('HSET', nodeKey, 'created', NOW, 'tags', tagsNow, 'granted', granted, 'cidrs', cidrs)
else
  nodeKey = K.node(vip)
  local old = redis.call('HMGET', nodeKey, 'orig', 'hostname', 'tags', 'pub')
  prevTags = old[3] or '[]'
  tagsNow = prevTags
  -- A re-join that changes nothing (same key, original IP, hostname as registered; tags and
  -- ephemeral come from the record) emits nothing: only its new session token is written.
  if old[1] == orig and old[2] == hostname and old[4] == pub and redis.call('SISMEMBER', K.nodes, vip) == 1
    and redis.call('GET', K.orig(orig)) == vip and redis.call('GET', K.host(hostname)) == vip then
    redis.call('HSET', nodeKey, 'lastSeen', NOW)
    admit(vip, pub, challengeNonce, challengeUsedTtl, sessionHash, sessionTtl)
    return { 'ok', vip, tonumber(redis.call('GET', K.version) or '0'), 0, generation, prevTags, cidrs, ephemeral }
  end
  if old[1] and old[1] ~= orig then delIfPoints(K.orig(old[1]), vip) end
  if old[2] and string.lower(old[2]) ~= string.lower(hostname) then delIfPoints(K.host(old[2]), vip) end
end

redis.call('HSET', nodeKey, 'pub', pub, 'orig', orig, 'hostname', hostname, 'ephemeral', ephemeral, 'lastSeen', NOW)
indexMember(vip, pub, orig, hostname, ephemeral)
admit(vip, pub, challengeNonce, challengeUsedTtl, sessionHash, sessionTtl)
local typ = EV.NodeChanged
if created == 1 then typ = EV.NodeUp end
local v = emit(typ, vip, prevTags)
return { 'ok', vip, v, created, generation, tagsNow, cidrs, ephemeral }
`;

/**
 * Remove one member. ARGV[5] vip, [6] '1' to refuse its key's later joins (admin removal),
 * '0' to let it join again with a token (leave). Returns the version, or 0 when no such member.
 */
export const REMOVE_LUA = COMMON + `
local v = removeNode(ARGV[5], ARGV[6] == '1')
if not v then return 0 end
return v
`;

/**
 * Admin tag change. ARGV[5] vip, [6] tags to add (JSON array), [7] tags to remove (JSON
 * array; applied after the additions). Returns {version, tags JSON}; version 0 when no such
 * member; the current version (no event) when the tags did not change.
 */
export const TAG_LUA = COMMON + `
local nodeKey = K.node(ARGV[5])
local cur = redis.call('HGET', nodeKey, 'tags')
if not cur or redis.call('HEXISTS', nodeKey, 'pub') == 0 then return { 0, '[]' } end
local set = {}
for _, t in ipairs(cjson.decode(cur)) do set[t] = true end
for _, t in ipairs(cjson.decode(ARGV[6])) do set[t] = true end
for _, t in ipairs(cjson.decode(ARGV[7])) do set[t] = nil end
local tags = {}
for t in pairs(set) do tags[#tags + 1] = t end
table.sort(tags)
local updated = jsonList(tags)
if updated == jsonList(cjson.decode(cur)) then
  return { tonumber(redis.call('GET', K.version) or '0'), updated }
end
redis.call('HSET', nodeKey, 'tags', updated)
return { emit(EV.NodeChanged, ARGV[5], cur), updated }
`;

/**
 * Bearer check: ARGV[5] session-token sha256, [6] session TTL ms. Returns vip or false. The
 * token holds "vip pub"; it is valid only while P:key:<pub> still points at that vip (a removed
 * member's tokens die with it). No write on the common path (every long-poll runs this): no
 * `lastSeen` (liveness comes from relay sessions, see SWEEP_LUA); the token's TTL is renewed
 * (PEXPIRE to the full session TTL) only once less than half of it is left, so a member that
 * keeps polling keeps its token without a re-join, at one write per half TTL. Returns
 * { vip, pub, ms left } (coordinator/session-cache.ts keeps it while more than half is left).
 */
export const AUTH_LUA = COMMON + `
local tokenKey = K.sessionToken(ARGV[5])
local s = redis.call('GET', tokenKey)
if not s then return false end
local sp = string.find(s, ' ', 1, true)
local vip, pub = string.sub(s, 1, sp - 1), string.sub(s, sp + 1)
if redis.call('GET', K.key(pub)) ~= vip then return false end
local ttl = tonumber(ARGV[6])
local left = redis.call('PTTL', tokenKey)
if left >= 0 and left < ttl / 2 then
  redis.call('PEXPIRE', tokenKey, ttl)
  left = ttl
end
return { vip, pub, left }
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
      if removeNode(vip, false) then removed[#removed + 1] = vip else redis.call('SREM', K.ephemeral, vip) end
    end
  end
end
return removed
`;

/** Consistent snapshot: {version, policy text or false, vip1, {k, v, ...}, vip2, ...}. */
export const SNAPSHOT_LUA = COMMON + `
local out = { tonumber(redis.call('GET', K.version) or '0'), redis.call('GET', K.policy) }
for _, vip in ipairs(redis.call('SMEMBERS', K.nodes)) do
  out[#out + 1] = vip
  out[#out + 1] = redis.call('HGETALL', K.node(vip))
end
return out
`;

/**
 * Set (ARGV[5] the canonical policy text) or clear (ARGV[5] '') the policy. Returns
 * {version, changed (1|0)}: no event and the current version when nothing changes. A change
 * bumps the version, appends `policy-changed` with `prev` (the text before, '' for none) to
 * P:changes and publishes {type: 'policy-changed', version}.
 */
export const POLICY_LUA = COMMON + `
local text = ARGV[5]
local prev = redis.call('GET', K.policy) or ''
if prev == text then return { tonumber(redis.call('GET', K.version) or '0'), 0 } end
if text == '' then redis.call('DEL', K.policy) else redis.call('SET', K.policy, text) end
local v = redis.call('INCR', K.version)
redis.call('XADD', K.changes, 'MAXLEN', '~', MAXLEN, v .. '-0', 'type', EV.PolicyChanged, 'prev', prev)
redis.call('PUBLISH', K.events, cjson.encode({ type = EV.PolicyChanged, version = v }))
return { v, 1 }
`;

/**
 * The change feed after ARGV[5] (since), consistent with the current state: {'full'} when the
 * feed cannot say (since ahead of Redis, entries trimmed, or more than ARGV[6] of them);
 * otherwise {version, entries (XRANGE form), {vip, {k, v, ...}, ...} for every vip the entries
 * touch (an empty list: gone), the policy text (false: none) or false when no entry changed it}.
 */
export const CHANGES_LUA = COMMON + `
local since, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local cur = tonumber(redis.call('GET', K.version) or '0')
if since > cur then return { 'full' } end
if since == cur then return { cur, {}, {}, false } end
if cur - since > limit then return { 'full' } end
local entries = redis.call('XRANGE', K.changes, (since + 1) .. '-0', '+', 'COUNT', limit)
if #entries ~= cur - since or entries[1][1] ~= (since + 1) .. '-0' then return { 'full' } end
local seen, nodes, policy = {}, {}, false
for _, e in ipairs(entries) do
  local f = e[2]
  local typ, vip = nil, nil
  for i = 1, #f, 2 do
    if f[i] == 'type' then typ = f[i + 1] elseif f[i] == 'vip' then vip = f[i + 1] end
  end
  if typ == EV.PolicyChanged then
    policy = true
  elseif vip and not seen[vip] then
    seen[vip] = true
    nodes[#nodes + 1] = vip
    nodes[#nodes + 1] = redis.call('HGETALL', K.node(vip))
  end
end
if policy then policy = redis.call('GET', K.policy) or '' end
return { cur, entries, nodes, policy }
`;

/**
 * First start: write P:deployment (generation ARGV[5], createdAt) unless it exists. Returns
 * {generation, 1 when written}. A coordinator cannot tell an empty Redis at its start from a
 * first start: REASSERT_LUA starts the hold when a record of an older generation shows up.
 */
export const INIT_GENERATION_LUA = COMMON + `
if redis.call('EXISTS', K.deployment) == 1 then return { redis.call('HGET', K.deployment, 'generation'), 0 } end
redis.call('HSET', K.deployment, 'generation', ARGV[5], 'createdAt', NOW)
return { ARGV[5], 1 }
`;

/**
 * Periodic state check (every coordinator, every 2 s): ARGV[5] a new generation id, [6] the
 * re-assert grace ms. Returns {generation, 1 when this call found the state gone}.
 */
export const STATE_CHECK_LUA = COMMON + `
local g, rebuilt = ensureGeneration(ARGV[5], tonumber(ARGV[6]))
if rebuilt then return { g, 1 } end
return { g, 0 }
`;

/**
 * Re-assert a signed membership record (the API verified the signature, the deployment, the
 * expiry and the key proof). ARGV after the head: [5] new generation id, [6] grace ms, [7] pub,
 * [8] vip, [9] orig, [10] hostname, [11] tags (JSON, sorted), [12] cidrs (JSON), [13] ephemeral
 * '1'/'0', [14] the record's issued-at (ms), [15] its generation, [16] the challenge nonce,
 * [17] session-token sha256, [18] session TTL ms, [19] TTL ms of the challenge's used marker.
 * Returns {'ok', vip, version, restored(0|1)} or {'err', code, detail}; all checks before the
 * first write (but ensureGeneration's repair).
 *
 * Refused: a key an admin removed (key-removed); a record issued before the key was removed
 * (member-removed: P:departed); a key that is a member at another vip now (record-superseded);
 * a vip, original IP or hostname another key holds (vip-taken, original-ip-taken,
 * hostname-taken). A key that is already the member at that vip just gets a session (as a
 * re-join). A record from an older generation than P:deployment's, issued before it was
 * created, proves the state was lost before this coordinator started: the hold starts then
 * (once per generation).
 */
export const REASSERT_LUA = COMMON + `
local grace = tonumber(ARGV[6])
local pub, vip, orig, hostname = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local tags, cidrs, ephemeral, iat, recGen = ARGV[11], ARGV[12], ARGV[13], tonumber(ARGV[14]), ARGV[15]
local challengeNonce, sessionHash, sessionTtl, challengeUsedTtl = ARGV[16], ARGV[17], ARGV[18], ARGV[19]
ensureGeneration(ARGV[5], grace)

local refused = challengeUsedOrKeyRemoved(challengeNonce, pub)
if refused then return refused end
local departed = redis.call('GET', K.departed(pub))
if departed and tonumber(departed) >= iat then
  return { 'err', 'member-removed', 'removed at ' .. departed .. ' ms, the record was issued at ' .. tostring(iat) .. ' ms' }
end

local cur = redis.call('GET', K.key(pub))
if cur and redis.call('HGET', K.node(cur), 'pub') == pub then
  if cur ~= vip then return { 'err', 'record-superseded', 'this key is member ' .. cur .. ' now' } end
  redis.call('HSET', K.node(vip), 'lastSeen', NOW)
  redis.call('SET', K.challengeUsed(challengeNonce), '1', 'PX', challengeUsedTtl)
  redis.call('SET', K.sessionToken(sessionHash), vip .. ' ' .. pub, 'PX', sessionTtl)
  return { 'ok', vip, tonumber(redis.call('GET', K.version) or '0'), 0 }
end
local h = redis.call('HMGET', K.node(vip), 'pub', 'hostname')
if h[1] and h[1] ~= pub then return { 'err', 'vip-taken', vip .. ' is held by another key (' .. (h[2] or '') .. ')' } end
local taken = heldByAnother(vip, orig, hostname)
if taken then return taken end

-- From here on: writes only.
local d = redis.call('HMGET', K.deployment, 'generation', 'createdAt', 'holdStarted')
if recGen ~= d[1] and not d[3] and iat < tonumber(d[2] or '0') then startHold(grace) end
redis.call('ZREM', K.ipamQuarantine, vip)
local nodeKey = K.node(vip)
redis.call('HSET', nodeKey, 'pub', pub, 'orig', orig, 'hostname', hostname, 'tags', tags, 'granted', tags, 'cidrs', cidrs,
  'ephemeral', ephemeral, 'created', NOW, 'lastSeen', NOW, 'restored', NOW)
indexMember(vip, pub, orig, hostname, ephemeral)
admit(vip, pub, challengeNonce, challengeUsedTtl, sessionHash, sessionTtl)
return { 'ok', vip, emit(EV.NodeUp, vip, nil), 1 }
`;
