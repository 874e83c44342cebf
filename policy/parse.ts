/**
 * Policy file text ⇄ `Policy`. The file is JSON:
 *
 *   { "rules": [ { "from": ["tag:controller"], "to": ["tag:agent"],
 *                  "ports": ["tcp/22", "tcp/8000-9000", "icmp"] } ] }
 *
 * The parser is strict because a policy is a security boundary: a file it does not fully
 * understand is refused whole (one PolicyError naming the path, line/column and reason),
 * never half-applied. Unknown fields are refused (a misspelt "form" must not become "no
 * sources"); equal keys in one object are refused (JSON.parse would keep the last one); empty
 * lists are refused (a rule that names no one or no port is a mistake, and a policy without
 * rules would cut every member off: removing the policy is a different command). Duplicate
 * rules and overlapping ports are allowed: harmless, and common while editing.
 *
 * Tags that no member carries are not an error (a policy may be written before the members
 * join); `unknownTags` lists them so the CLI can warn.
 */
import { PolicyError, type PolicyErrorCode } from './errors';
import { childPath, lineColumn, readJson, type JsonDocument } from './json-reader';
import type { Policy, PortSpec, Rule, Selector } from './types';

/**
 * A tag name: the coordinator's rule for member tags (coordinator/schemas.ts), repeated here
 * because policy/ imports nothing; keep the two in step.
 */
export const TAG_NAME = /^[A-Za-z0-9_.:/=-]{1,64}$/;

const RULE_FIELDS = ['from', 'to', 'ports'] as const;

/** Parse and validate a policy file. Throws exactly one PolicyError on the first problem. */
export function parsePolicy(text: string): Policy {
  const doc = readJson(text);
  const fail = (code: PolicyErrorCode, path: string, reason: string): never => {
    const off = doc.offsetOf(path);
    if (off === undefined) throw new PolicyError(code, path, reason);
    const { line, column } = lineColumn(text, off);
    throw new PolicyError(code, path, reason, line, column);
  };
  const root = object(doc, '', ['rules'], fail);
  const rules = list(root.rules, 'rules', fail);
  return {
    rules: rules.map((r, i): Rule => {
      const path = childPath('rules', i);
      const o = object(doc, path, RULE_FIELDS, fail, r);
      return {
        from: list(o.from, childPath(path, 'from'), fail).map((s, j) => selector(s, childPath(childPath(path, 'from'), j), fail)),
        to: list(o.to, childPath(path, 'to'), fail).map((s, j) => selector(s, childPath(childPath(path, 'to'), j), fail)),
        ports: list(o.ports, childPath(path, 'ports'), fail).map((s, j) => portSpec(s, childPath(childPath(path, 'ports'), j), fail)),
      };
    }),
  };
}

type Fail = (code: PolicyErrorCode, path: string, reason: string) => never;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** The object at `path` with exactly the `fields` (all required). */
function object<K extends string>(
  doc: JsonDocument, path: string, fields: readonly K[], fail: Fail, v: unknown = doc.value,
): Record<K, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('wrong-type', path, `expected an object, found ${typeName(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(fields as readonly string[]).includes(k)) {
      fail('unknown-field', childPath(path, k), `unknown field ${JSON.stringify(k)} (expected ${fields.map((f) => JSON.stringify(f)).join(', ')})`);
    }
  }
  for (const f of fields) if (!(f in o)) fail('missing-field', path, `missing field ${JSON.stringify(f)}`);
  return o as Record<K, unknown>;
}

function list(v: unknown, path: string, fail: Fail): unknown[] {
  if (!Array.isArray(v)) return fail('wrong-type', path, `expected a list, found ${typeName(v)}`);
  if (v.length === 0) {
    return fail('empty-list', path, path === 'rules'
      ? 'no rules: a policy without rules would cut every member off (to allow everything, remove the policy)'
      : 'empty list: name at least one entry');
  }
  return v;
}

function selector(v: unknown, path: string, fail: Fail): Selector {
  if (typeof v !== 'string') return fail('wrong-type', path, `expected a string like "tag:NAME" or "*", found ${typeName(v)}`);
  if (v === '*') return { kind: 'any' };
  if (!v.startsWith('tag:')) return fail('bad-selector', path, `${JSON.stringify(v)}: expected "tag:NAME" or "*"`);
  const tag = v.slice(4);
  if (!TAG_NAME.test(tag)) return fail('bad-selector', path, `${JSON.stringify(v)}: a tag name is 1-64 characters of A-Z a-z 0-9 _ . : / = -`);
  return { kind: 'tag', tag };
}

const PORT_RANGE = /^(tcp|udp)\/([0-9]+)(?:-([0-9]+))?$/;

function portSpec(v: unknown, path: string, fail: Fail): PortSpec {
  if (typeof v !== 'string') return fail('wrong-type', path, `expected a string like "tcp/22", found ${typeName(v)}`);
  if (v === '*') return { proto: 'any' };
  if (v === 'icmp') return { proto: 'icmp' };
  const bad = (why: string): never => fail('bad-port', path, `${JSON.stringify(v)}: ${why}`);
  const m = PORT_RANGE.exec(v);
  if (!m) {
    if (/^icmp\//.test(v)) return bad('icmp takes no port: write "icmp"');
    return bad('expected tcp/N, tcp/N-M, udp/N, udp/N-M, icmp or *');
  }
  const num = (s: string): number => {
    if (s.length > 1 && s[0] === '0') return bad('port numbers have no leading zeros');
    const n = Number(s);
    if (n < 1 || n > 65535) return bad(`port ${s} is outside 1-65535`);
    return n;
  };
  const first = num(m[2]);
  const last = m[3] === undefined ? first : num(m[3]);
  if (first > last) return bad(`range ${first}-${last} runs backwards`);
  return { proto: m[1] as 'tcp' | 'udp', first, last };
}

/**
 * One port spec as the policy file and peer maps write it (`tcp/22`, `tcp/8000-9000`, `udp/53`,
 * `icmp`, `*`): the inverse of formatPortSpec. Throws a PolicyError (code `bad-port` or
 * `wrong-type`, path `path`) on anything else: a spec we do not fully understand must never
 * widen what a peer may open.
 */
export function parsePortSpec(text: unknown, path = 'port'): PortSpec {
  return portSpec(text, path, (code, at, reason) => {
    throw new PolicyError(code, at, reason);
  });
}

export function formatSelector(s: Selector): string {
  return s.kind === 'any' ? '*' : `tag:${s.tag}`;
}

export function formatPortSpec(p: PortSpec): string {
  if (p.proto === 'any') return '*';
  if (p.proto === 'icmp') return 'icmp';
  return p.first === p.last ? `${p.proto}/${p.first}` : `${p.proto}/${p.first}-${p.last}`;
}

/**
 * The canonical text of a policy (what `policy get` prints): the file format, one rule per
 * line, entries in the order given. `parsePolicy(formatPolicy(p))` equals `p`.
 */
export function formatPolicy(policy: Policy): string {
  const q = (xs: string[]): string => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const rules = policy.rules.map((r) =>
    `    { "from": ${q(r.from.map(formatSelector))}, "to": ${q(r.to.map(formatSelector))}, "ports": ${q(r.ports.map(formatPortSpec))} }`);
  return `{\n  "rules": [\n${rules.join(',\n')}\n  ]\n}\n`;
}

/** Tags the policy names that no member carries (sorted, unique): for a warning, not an error. */
export function unknownTags(policy: Policy, knownTags: Iterable<string>): string[] {
  const known = new Set(knownTags);
  const out = new Set<string>();
  for (const r of policy.rules) {
    for (const s of [...r.from, ...r.to]) if (s.kind === 'tag' && !known.has(s.tag)) out.add(s.tag);
  }
  return [...out].sort();
}
