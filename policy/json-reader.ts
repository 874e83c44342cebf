/**
 * A strict JSON reader (RFC 8259) that remembers where every value starts, so the policy
 * validator can say "rules[2].ports[1] (line 7, column 22)" and not only "position 181".
 * `JSON.parse` cannot: it keeps no positions, silently keeps the last of two equal keys (a
 * policy typo that quietly changes access), and its messages differ between Node versions.
 *
 * Objects come back with a null prototype, so a key like `__proto__` is just a key.
 * Nesting is bounded (MAX_DEPTH) so hostile input cannot overflow the stack.
 */
import { PolicyError } from './errors';

/** Deeper than any policy (document → rules → rule → list → string is 4). */
export const MAX_DEPTH = 32;

export interface JsonDocument {
  value: unknown;
  /** Offset in the text where the value at `path` starts (paths as `rules[2].ports[1]`). */
  offsetOf(path: string): number | undefined;
}

/** 1-based line and column (UTF-16 code units) of `offset` in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/** Path of a member of `parent`: `a.b` for identifier-like keys, `a["x y"]` otherwise. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key)}]`;
}

/** Parse `text`; throws PolicyError ('invalid-json', 'duplicate-key', 'too-deep'). */
export function readJson(text: string): JsonDocument {
  const positions = new Map<string, number>();
  let i = 0;

  const fail = (code: 'invalid-json' | 'duplicate-key' | 'too-deep', path: string, reason: string, at = i): never => {
    const { line, column } = lineColumn(text, at);
    throw new PolicyError(code, path, reason, line, column);
  };
  const describe = (at: number): string => (at >= text.length ? 'end of text' : JSON.stringify(text[at]));
  const skipSpace = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const expect = (ch: string, path: string): void => {
    if (text[i] !== ch) fail('invalid-json', path, `expected ${JSON.stringify(ch)}, found ${describe(i)}`);
    i++;
  };

  const readString = (path: string): string => {
    const start = i;
    i++; // opening quote
    let out = '';
    let runStart = i;
    for (;;) {
      if (i >= text.length) fail('invalid-json', path, 'unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail('invalid-json', path, 'control character in string (escape it)');
      if (c === 0x5c) {
        out += text.slice(runStart, i);
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else {
          fail('invalid-json', path, 'bad escape in string');
        }
        runStart = i;
        continue;
      }
      i++;
    }
    out += text.slice(runStart, i);
    i++; // closing quote
    return out;
  };

  const readValue = (path: string, depth: number): unknown => {
    skipSpace();
    if (depth > MAX_DEPTH) fail('too-deep', path, `nested deeper than ${MAX_DEPTH} levels`);
    positions.set(path, i);
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      skipSpace();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        skipSpace();
        if (text[i] !== '"') fail('invalid-json', path, `expected a field name in quotes, found ${describe(i)}`);
        const keyAt = i;
        const key = readString(path);
        const p = childPath(path, key);
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail('duplicate-key', p, `field ${JSON.stringify(key)} appears twice`, keyAt);
        skipSpace();
        expect(':', p);
        obj[key] = readValue(p, depth + 1);
        skipSpace();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return obj; }
        fail('invalid-json', path, `expected "," or "}", found ${describe(i)}`);
      }
    }
    if (c === '[') {
      i++;
      const arr: unknown[] = [];
      skipSpace();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(readValue(childPath(path, arr.length), depth + 1));
        skipSpace();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return arr; }
        fail('invalid-json', path, `expected "," or "]", found ${describe(i)}`);
      }
    }
    if (c === '"') return readString(path);
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (m && m[0].length > 0) {
      i += m[0].length;
      return Number(m[0]);
    }
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return fail('invalid-json', path, `expected a value, found ${describe(i)}`);
  };

  const value = readValue('', 0);
  skipSpace();
  if (i < text.length) fail('invalid-json', '', `unexpected ${describe(i)} after the document`);
  return { value, offsetOf: (path) => positions.get(path) };
}
