/**
 * common/redis-schema.ts is the one source of Redis key names and P:events types:
 *   - docs/STATE.md describes exactly the same keys (with the same type, writers, readers and
 *     TTL as the doc comments) and the same events, in both directions;
 *   - the event codec round-trips, and decodeEvent never throws on anything from the network;
 *   - no other source file spells the prefix, a key name or an event type.
 */
import test from 'ava';
import fc from 'fast-check';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  CASE_INSENSITIVE_KEYS, DEFAULT_PREFIX, EVENT_TYPES, EventType, KEY_PATTERNS, decodeEvent, encodeEvent, isNodeEvent, keyHead, redisKeys,
  type ClusterEvent, type KeyName, type NodeEventType, type SessionEventType,
} from '../../../common/redis-schema';
import { luaSchema } from '../../../coordinator/lua-scripts';

const ROOT = path.join(__dirname, '../../..');
const SCHEMA_FILE = 'common/redis-schema.ts';
const stateMd = readFileSync(path.join(ROOT, 'docs/STATE.md'), 'utf8');
const schemaSrc = readFileSync(path.join(ROOT, SCHEMA_FILE), 'utf8');

interface KeyRow { type: string; writers: string; readers: string; ttl: string }

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

/** The key table of docs/STATE.md: pattern after `P:` → its columns. */
function docKeys(): Map<string, KeyRow> {
  const rows = new Map<string, KeyRow>();
  for (const line of stateMd.split('\n')) {
    const m = /^\| `P:([^`]+)` \|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|/.exec(line);
    if (m) rows.set(m[1], { type: norm(m[2]), writers: norm(m[3]), readers: norm(m[4]), ttl: norm(m[5]) });
  }
  return rows;
}

/** The events table of docs/STATE.md (section "Events on `P:events`"). */
function docEvents(): string[] {
  const at = stateMd.indexOf('## Events on `P:events`');
  if (at < 0) return [];
  const section = stateMd.slice(at).split('\n## ')[0];
  return [...section.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);
}

/** The doc comment of each entry of KEY_PATTERNS: `type · written by W · read by R · TTL t — ...`. */
function sourceKeyComments(): Map<string, KeyRow> {
  const out = new Map<string, KeyRow>();
  const re = /\/\*\*\s*([^·]+?) · written by ([^·]+?) · read by ([^·]+?) · TTL (.+?) — [\s\S]*?\*\/\s*(\w+): '/g;
  for (const m of schemaSrc.matchAll(re)) {
    out.set(m[5], { type: norm(m[1]), writers: norm(m[2]), readers: norm(m[3]), ttl: norm(m[4]) });
  }
  return out;
}

test('docs/STATE.md and the schema module list the same keys, each way', (t) => {
  const doc = docKeys();
  t.true(doc.size >= 10, 'the key table was found in docs/STATE.md');
  const code = new Set<string>(Object.values(KEY_PATTERNS));
  const problems = [
    ...[...doc.keys()].filter((k) => !code.has(k)).map((k) => `P:${k} is in docs/STATE.md but not in ${SCHEMA_FILE} KEY_PATTERNS`),
    ...[...code].filter((k) => !doc.has(k)).map((k) => `P:${k} is in ${SCHEMA_FILE} KEY_PATTERNS but not in the docs/STATE.md key table`),
  ];
  t.deepEqual(problems, [], problems.join('\n'));
});

test('each key\'s doc comment states the type, writers, readers and TTL of docs/STATE.md', (t) => {
  const doc = docKeys();
  const comments = sourceKeyComments();
  for (const name of Object.keys(KEY_PATTERNS) as KeyName[]) {
    const c = comments.get(name);
    if (!c) {
      t.fail(`KEY_PATTERNS.${name} has no \`type · written by · read by · TTL —\` doc comment`);
      continue;
    }
    const row = doc.get(KEY_PATTERNS[name]);
    if (row) t.deepEqual(c, row, `P:${KEY_PATTERNS[name]}: doc comment and docs/STATE.md row differ`);
  }
});

test('docs/STATE.md and the schema module list the same event types, each way', (t) => {
  const doc = docEvents();
  t.true(doc.length > 0, 'the events table was found in docs/STATE.md');
  const code = new Set<string>(EVENT_TYPES);
  const problems = [
    ...doc.filter((e) => !code.has(e)).map((e) => `event ${e} is in docs/STATE.md but not in ${SCHEMA_FILE} EVENT_TYPES`),
    ...[...code].filter((e) => !doc.includes(e)).map((e) => `event ${e} is in ${SCHEMA_FILE} EVENT_TYPES but not in docs/STATE.md`),
  ];
  t.deepEqual(problems, [], problems.join('\n'));
});

test('redisKeys builds every name from the prefix and the table', (t) => {
  const k = redisKeys('x:');
  t.is(k.node('100.64.0.1'), 'x:node:100.64.0.1');
  t.is(k.sessionToken('ab'), 'x:stoken:ab');
  t.is(k.meshKey, 'x:mesh-key');
  t.is(k.events, 'x:events');
  t.is(redisKeys().relay('r1'), `${DEFAULT_PREFIX}relay:r1`);
  for (const name of Object.keys(KEY_PATTERNS) as KeyName[]) {
    const pattern: string = KEY_PATTERNS[name];
    t.regex(pattern, /^[a-z:-]+(<[A-Za-z0-9]+>)?$/, `${name}: at most one parameter, at the end`);
    const b = k[name] as string | ((p: string) => string);
    const built = typeof b === 'function' ? b('<P>') : b;
    const param = CASE_INSENSITIVE_KEYS.has(name) ? '<p>' : '<P>';
    t.is(built, 'x:' + pattern.replace(/<[^>]+>$/, param), name);
  }
  const heads = (Object.keys(KEY_PATTERNS) as KeyName[]).map((n) => keyHead(n).head);
  t.is(new Set(heads).size, heads.length, 'no two keys share a fixed part');
});

test('the Lua key builders are generated for every key and event type', (t) => {
  const lua = luaSchema();
  for (const name of Object.keys(KEY_PATTERNS) as KeyName[]) t.regex(lua, new RegExp(`^K\\.${name} = `, 'm'), name);
  for (const [name, type] of Object.entries(EventType)) t.true(lua.includes(`${name} = '${type}'`), name);
});

const vipArb = fc.ipV4();
const eventArb: fc.Arbitrary<ClusterEvent> = fc.oneof(
  fc.record({
    type: fc.constantFrom<NodeEventType>('node-up', 'node-changed', 'node-removed'),
    vip: vipArb,
    version: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  }),
  fc.record({
    type: fc.constantFrom<SessionEventType>('session-up', 'session-down'),
    vip: vipArb,
    relayId: fc.string({ minLength: 1, maxLength: 64 }),
  }),
  fc.record({
    type: fc.constantFrom<SessionEventType>('session-up', 'session-down'),
    vip: vipArb,
    relayId: fc.string({ minLength: 1, maxLength: 64 }),
    meshIp: vipArb,
    meshPort: fc.integer({ min: 1, max: 65535 }),
  }),
);

test('encodeEvent / decodeEvent round-trip', (t) => {
  fc.assert(fc.property(eventArb, (e) => {
    t.deepEqual(decodeEvent(encodeEvent(e)), e);
  }), { numRuns: 2000 });
});

test('the wire shape is what the Lua scripts and earlier relays publish', (t) => {
  // cjson output of the coordinator's emit(), field order as Redis may give it.
  t.deepEqual(decodeEvent('{"vip":"100.64.0.7","version":3,"type":"node-removed"}'), { type: 'node-removed', vip: '100.64.0.7', version: 3 });
  // A meshed relay: mesh fields first, meshPort as a string.
  t.deepEqual(decodeEvent('{"meshIp":"10.0.0.1","meshPort":"7001","type":"session-up","vip":"100.64.0.7","relayId":"r1"}'),
    { type: 'session-up', vip: '100.64.0.7', relayId: 'r1', meshIp: '10.0.0.1', meshPort: 7001 });
  t.like(JSON.parse(encodeEvent({ type: 'session-up', vip: '100.64.0.7', relayId: 'r1', meshIp: '10.0.0.1', meshPort: 7001 })),
    { meshPort: '7001' });
  t.true(isNodeEvent({ type: 'node-up', vip: 'v', version: 1 }));
  t.false(isNodeEvent({ type: 'session-down', vip: 'v', relayId: 'r' }));
});

test('decodeEvent rejects malformed events (positive control: the same event well-formed decodes)', (t) => {
  const ok = { type: 'node-up', vip: '100.64.0.1', version: 5 };
  t.truthy(decodeEvent(JSON.stringify(ok)));
  for (const bad of [
    { ...ok, type: 'node-exploded' }, { ...ok, vip: 7 }, { ...ok, vip: '' }, { ...ok, version: 0 }, { ...ok, version: 1.5 },
    { ...ok, version: '5' }, { type: 'node-up', vip: '100.64.0.1' }, { type: 'session-up', vip: '100.64.0.1' },
    { type: 'session-up', vip: '100.64.0.1', relayId: 3 }, [ok], null, 'node-up', 5,
  ]) t.is(decodeEvent(JSON.stringify(bad)), undefined, JSON.stringify(bad));
  for (const text of ['', '{', 'undefined', '{"type":"node-up"', ' '.repeat(5000)]) t.is(decodeEvent(text), undefined, text);
  // A bad mesh address drops only the mesh fields.
  t.deepEqual(decodeEvent(JSON.stringify({ type: 'session-down', vip: 'v', relayId: 'r', meshIp: '10.0.0.1', meshPort: '70000' })),
    { type: 'session-down', vip: 'v', relayId: 'r' });
});

test('decodeEvent never throws, on any string or JSON value', (t) => {
  const nearEvent = fc.record({
    type: fc.oneof(fc.constantFrom(...EVENT_TYPES), fc.jsonValue()),
    vip: fc.oneof(vipArb, fc.jsonValue()),
    version: fc.jsonValue(), relayId: fc.jsonValue(), meshIp: fc.jsonValue(), meshPort: fc.jsonValue(),
  }, { requiredKeys: [] });
  fc.assert(fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.json(), nearEvent.map((o) => JSON.stringify(o))), (s) => {
    const e = decodeEvent(s);
    if (e !== undefined) t.deepEqual(decodeEvent(encodeEvent(e)), e);
  }), { numRuns: 5000 });
  t.pass();
});

/** Non-test TypeScript sources (tsconfig's include). */
function sources(): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const abs = path.join(ROOT, rel);
    if (statSync(abs).isFile()) {
      if (rel.endsWith('.ts')) out.push(rel);
      return;
    }
    for (const e of readdirSync(abs)) if (e !== 'node_modules' && e !== 'build') walk(path.posix.join(rel, e));
  };
  for (const d of ['index.ts', 'common', 'protocol', 'native-bindings', 'relay', 'node-agent', 'coordinator', 'mapper', 'cli', 'testbed', 'bench']) walk(d);
  return out;
}

/** Literals that look like schema names but are something else. */
const NOT_SCHEMA: Record<string, string[]> = {
  'cli/commands/relay.ts': ["'mesh-key'"], // the --mesh-key option
  'cli/commands/node.ts': ["'removed-keys'"], // the `node removed-keys` command
};

test('only the schema module spells the prefix, a key name or an event type (comments aside)', (t) => {
  const files = sources();
  t.true(files.includes(SCHEMA_FILE));
  const forbidden: Array<[string, RegExp]> = [['the prefix literal', new RegExp(`['"\`]${DEFAULT_PREFIX}['"\`]`)]];
  for (const name of Object.keys(KEY_PATTERNS) as KeyName[]) {
    const head = keyHead(name).head.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
    // `${prefix}head…` in a template, `P .. 'head…'` in Lua, or a distinctive name quoted.
    const quoted = /[:-]/.test(keyHead(name).head) ? `|['"\`]${head}['"\`]` : '';
    forbidden.push([`key ${name}`, new RegExp(`\\}${head}(?![A-Za-z])|\\.\\. ['"]${head}${quoted}`)]);
  }
  for (const type of EVENT_TYPES) forbidden.push([`event ${type}`, new RegExp(`['"\`]${type}['"\`]`)]);
  const problems: string[] = [];
  for (const f of files) {
    if (f === SCHEMA_FILE) continue;
    // Strip comments: documentation may name keys as `P:session:<vip>`.
    let code = readFileSync(path.join(ROOT, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, '')).replace(/(^|[^:])\/\/.*$/gm, '$1');
    for (const lit of NOT_SCHEMA[f] ?? []) code = code.split(lit).join('');
    for (const [what, re] of forbidden) {
      for (const m of code.matchAll(new RegExp(re.source, 'g'))) {
        problems.push(`${f}:${code.slice(0, m.index).split('\n').length} spells ${what} (${m[0]}); use ${SCHEMA_FILE}`);
      }
    }
  }
  t.deepEqual(problems, [], problems.join('\n'));
  t.regex(schemaSrc, new RegExp(`DEFAULT_PREFIX = '${DEFAULT_PREFIX}'`), 'the prefix literal is in the schema module');
});
