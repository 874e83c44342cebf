import test from 'ava';
import fc from 'fast-check';
import { parsePolicy, parsePortSpec, formatPolicy, formatPortSpec, unknownTags, PolicyError, type Policy } from '../../../policy';
import { arbPolicy } from './arbitraries';

const ISSUE_EXAMPLE = `{ "rules": [ { "from": ["tag:controller"], "to": ["tag:agent"], "ports": ["tcp/22", "tcp/8000-9000", "icmp"] } ] }`;

test('the issue example parses', (t) => {
  t.deepEqual(parsePolicy(ISSUE_EXAMPLE), {
    rules: [{
      from: [{ kind: 'tag', tag: 'controller' }],
      to: [{ kind: 'tag', tag: 'agent' }],
      ports: [{ proto: 'tcp', first: 22, last: 22 }, { proto: 'tcp', first: 8000, last: 9000 }, { proto: 'icmp' }],
    }],
  });
});

test('wildcards, udp ranges, duplicate rules and overlapping ports are accepted', (t) => {
  const rule = '{ "from": ["*"], "to": ["tag:a", "*"], "ports": ["udp/53", "udp/1-65535", "*", "tcp/1-1"] }';
  const p = parsePolicy(`{"rules": [${rule}, ${rule}]}`);
  t.is(p.rules.length, 2);
  t.deepEqual(p.rules[0], p.rules[1]);
  t.deepEqual(p.rules[0].ports, [
    { proto: 'udp', first: 53, last: 53 }, { proto: 'udp', first: 1, last: 65535 }, { proto: 'any' }, { proto: 'tcp', first: 1, last: 1 },
  ]);
});

const goodRule = (over: Record<string, unknown>): string =>
  JSON.stringify({ rules: [{ from: ['tag:a'], to: ['tag:b'], ports: ['tcp/22'], ...over }] });

/** [name, text, code, path, line?, reason fragment] */
const BAD: [string, string, string, string, number | undefined, RegExp][] = [
  ['empty text', '', 'invalid-json', '', 1, /expected a value/],
  ['trailing comma', '{"rules": [],}', 'invalid-json', '', 1, /field name/],
  ['junk after document', '{"rules": []} x', 'invalid-json', '', 1, /after the document/],
  ['unterminated string, line 3', '{\n  "rules": [\n    { "from": ["tag:a ]', 'invalid-json', 'rules[0].from[0]', 3, /unterminated/],
  ['single quotes', "{'rules': []}", 'invalid-json', '', 1, /field name/],
  ['duplicate key', '{"rules": [{"from": ["*"], "from": ["*"], "to": ["*"], "ports": ["*"]}]}', 'duplicate-key', 'rules[0].from', 1, /twice/],
  ['too deep', '['.repeat(100), 'too-deep', '[0]'.repeat(33), 1, /deeper/],
  ['top level list', '[]', 'wrong-type', '', 1, /expected an object, found a list/],
  ['unknown top-level field', '{"rules": [], "rule": []}', 'unknown-field', 'rule', 1, /unknown field "rule"/],
  ['missing rules', '{}', 'missing-field', '', 1, /missing field "rules"/],
  ['rules not a list', '{"rules": {}}', 'wrong-type', 'rules', 1, /expected a list/],
  ['no rules', '{"rules": []}', 'empty-list', 'rules', 1, /no rules/],
  ['rule not an object', '{"rules": ["x"]}', 'wrong-type', 'rules[0]', 1, /expected an object, found a string/],
  ['misspelt field', goodRule({ form: ['*'] }), 'unknown-field', 'rules[0].form', 1, /unknown field "form"/],
  ['missing ports', JSON.stringify({ rules: [{ from: ['*'], to: ['*'] }] }), 'missing-field', 'rules[0]', 1, /"ports"/],
  ['from a string', goodRule({ from: 'tag:a' }), 'wrong-type', 'rules[0].from', 1, /expected a list, found a string/],
  ['empty to', goodRule({ to: [] }), 'empty-list', 'rules[0].to', 1, /empty list/],
  ['empty ports', goodRule({ ports: [] }), 'empty-list', 'rules[0].ports', 1, /empty list/],
  ['selector number', goodRule({ to: [7] }), 'wrong-type', 'rules[0].to[0]', 1, /found a number/],
  ['bare tag', goodRule({ from: ['controller'] }), 'bad-selector', 'rules[0].from[0]', 1, /"tag:NAME" or "\*"/],
  ['empty tag', goodRule({ from: ['tag:'] }), 'bad-selector', 'rules[0].from[0]', 1, /tag name/],
  ['tag with space', goodRule({ from: ['tag:a b'] }), 'bad-selector', 'rules[0].from[0]', 1, /tag name/],
  ['tag too long', goodRule({ to: ['*', `tag:${'x'.repeat(65)}`] }), 'bad-selector', 'rules[0].to[1]', 1, /1-64/],
  ['port 0', goodRule({ ports: ['tcp/22', 'tcp/0'] }), 'bad-port', 'rules[0].ports[1]', 1, /outside 1-65535/],
  ['port above 65535', goodRule({ ports: ['udp/65536'] }), 'bad-port', 'rules[0].ports[0]', 1, /outside 1-65535/],
  ['range above 65535', goodRule({ ports: ['udp/1-70000'] }), 'bad-port', 'rules[0].ports[0]', 1, /outside/],
  ['backwards range', goodRule({ ports: ['tcp/9000-8000'] }), 'bad-port', 'rules[0].ports[0]', 1, /backwards/],
  ['leading zero', goodRule({ ports: ['tcp/022'] }), 'bad-port', 'rules[0].ports[0]', 1, /leading zeros/],
  ['junk port', goodRule({ ports: ['tcp/ssh'] }), 'bad-port', 'rules[0].ports[0]', 1, /expected tcp\/N/],
  ['upper case', goodRule({ ports: ['TCP/22'] }), 'bad-port', 'rules[0].ports[0]', 1, /expected tcp\/N/],
  ['open range', goodRule({ ports: ['tcp/22-'] }), 'bad-port', 'rules[0].ports[0]', 1, /expected tcp\/N/],
  ['icmp with port', goodRule({ ports: ['icmp/8'] }), 'bad-port', 'rules[0].ports[0]', 1, /icmp takes no port/],
  ['port as number', goodRule({ ports: [22] }), 'wrong-type', 'rules[0].ports[0]', 1, /found a number/],
  ['null port', goodRule({ ports: [null] }), 'wrong-type', 'rules[0].ports[0]', 1, /found null/],
];

test('bad files are refused with one PolicyError naming code, path, line and reason', (t) => {
  for (const [name, text, code, path, line, reason] of BAD) {
    const e = t.throws(() => parsePolicy(text), { instanceOf: PolicyError }, name);
    if (!e) continue;
    t.is(e.name, 'PolicyError', name);
    t.is(e.code as string, code, name);
    t.is(e.path, path, name);
    t.is(e.line, line, name);
    t.regex(e.reason, reason, name);
    t.true(e.message.includes(e.reason), name);
  }
});

test('line and column point at the offending value in a multi-line file', (t) => {
  const text = [
    '{',
    '  "rules": [',
    '    { "from": ["tag:controller"], "to": ["tag:agent"], "ports": ["tcp/22"] },',
    '    { "from": ["*"], "to": ["tag:agent"],',
    '      "ports": ["icmp", "tcp/70000"] }',
    '  ]',
    '}',
  ].join('\n');
  const e = t.throws(() => parsePolicy(text), { instanceOf: PolicyError });
  t.is(e?.path, 'rules[1].ports[1]');
  t.is(e?.line, 5);
  t.is(e?.column, text.split('\n')[4].indexOf('"tcp/70000"') + 1);
  t.is(e?.message, `rules[1].ports[1] (line 5, column ${e?.column}): "tcp/70000": port 70000 is outside 1-65535`);
});

test('a key named __proto__ is an unknown field, not a prototype', (t) => {
  const e = t.throws(() => parsePolicy('{"rules": [{"__proto__": {}, "from": ["*"], "to": ["*"], "ports": ["*"]}]}'), { instanceOf: PolicyError });
  t.is(e?.code, 'unknown-field');
  t.is(e?.path, 'rules[0].__proto__');
});

test('arbitrary text never throws anything but PolicyError', (t) => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (s) => {
    try {
      parsePolicy(s);
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
    }
  }));
  t.pass();
});

test('formatPolicy round-trips and is canonical', (t) => {
  fc.assert(fc.property(arbPolicy(), (p: Policy) => {
    const text = formatPolicy(p);
    t.deepEqual(parsePolicy(text), p);
    t.is(formatPolicy(parsePolicy(text)), text);
  }), { numRuns: 300 });
  t.is(formatPolicy(parsePolicy('{"rules":[{"from":["*"],"to":["tag:a"],"ports":["tcp/22-22","udp/1-2"]}]}')),
    '{\n  "rules": [\n    { "from": ["*"], "to": ["tag:a"], "ports": ["tcp/22", "udp/1-2"] }\n  ]\n}\n');
});

test('unknownTags lists tags no member carries, for a warning', (t) => {
  const p = parsePolicy('{"rules":[{"from":["tag:s","*"],"to":["tag:b","tag:a","tag:b"],"ports":["*"]}]}');
  t.deepEqual(unknownTags(p, ['s', 'x']), ['a', 'b']);
  t.deepEqual(unknownTags(p, new Set(['a', 'b', 's'])), []);
});

test('parsePortSpec reads one spec as peer maps write it, the inverse of formatPortSpec', (t) => {
  t.deepEqual(parsePortSpec('tcp/22'), { proto: 'tcp', first: 22, last: 22 });
  t.deepEqual(parsePortSpec('tcp/8000-9000'), { proto: 'tcp', first: 8000, last: 9000 });
  t.deepEqual(parsePortSpec('udp/53'), { proto: 'udp', first: 53, last: 53 });
  t.deepEqual(parsePortSpec('icmp'), { proto: 'icmp' });
  t.deepEqual(parsePortSpec('*'), { proto: 'any' });
  fc.assert(fc.property(arbPolicy(), (p) => {
    for (const r of p.rules) for (const s of r.ports) t.deepEqual(parsePortSpec(formatPortSpec(s)), s);
  }), { numRuns: 50 });
});

test('parsePortSpec refuses anything else with a PolicyError naming the path', (t) => {
  for (const bad of ['tcp/0', 'tcp/65536', 'tcp/9-1', 'tcp/022', 'icmp/8', 'sctp/1', 'tcp', ' tcp/22', '', 22, null]) {
    const e = t.throws(() => parsePortSpec(bad, 'inbound[3]'), { instanceOf: PolicyError }, String(bad));
    t.is(e?.path, 'inbound[3]');
    t.true(e?.code === 'bad-port' || e?.code === 'wrong-type', String(bad));
  }
});
