/**
 * Who may use the relay: static public key → overlay address. The relay asks once per AUTH
 * (not per packet). `StaticMemberDirectory` is issue-2 static mode, loaded from a file; a
 * Redis-backed directory reads `P:key:<pubBase64>` → vip (docs/STATE.md) behind the same
 * interface.
 *
 * Members file format, one member per line:
 *
 *     # comment, blank lines ignored
 *     <base64 X25519 public key, 32 bytes> <overlay IPv4>
 */
import { readFileSync } from 'node:fs';
import { parseAddr } from '../common';

export interface MemberDirectory {
  /** The member with this static public key, or undefined. Rejects only on backend failure. */
  lookupByKey(publicKey: Uint8Array): Promise<{ vip: number } | undefined>;
}

export class MemberFileError extends Error {
  override readonly name = 'MemberFileError';
  readonly code = 'ERR_MEMBER_FILE';
  constructor(readonly source: string, readonly line: number, message: string) {
    super(`${source}:${line}: ${message}`);
  }
}

export interface MemberEntry {
  publicKey: string;
  vip: number;
  line: number;
}

/** Parse a members file; throws MemberFileError naming the file and line on bad input. */
export function parseMemberFile(text: string, source = 'members'): MemberEntry[] {
  const out: MemberEntry[] = [];
  const keys = new Map<string, number>();
  const vips = new Map<number, number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const hash = lines[i].indexOf('#');
    const content = (hash >= 0 ? lines[i].slice(0, hash) : lines[i]).trim();
    if (!content) continue;
    const fields = content.split(/\s+/);
    if (fields.length !== 2) {
      throw new MemberFileError(source, lineNo, `expected "<base64 public key> <overlay IPv4>", got ${fields.length} field(s)`);
    }
    const [keyB64, ip] = fields;
    if (!/^[A-Za-z0-9+/]{43}=$/.test(keyB64) || Buffer.from(keyB64, 'base64').length !== 32) {
      throw new MemberFileError(source, lineNo, 'public key is not 32 bytes of base64');
    }
    let vip: number;
    try {
      vip = parseAddr(ip);
    } catch {
      throw new MemberFileError(source, lineNo, `not an IPv4 address: ${JSON.stringify(ip)}`);
    }
    if (vip === 0) throw new MemberFileError(source, lineNo, 'overlay address 0.0.0.0 is not allowed');
    const dupKey = keys.get(keyB64);
    if (dupKey !== undefined) throw new MemberFileError(source, lineNo, `public key already listed on line ${dupKey}`);
    const dupVip = vips.get(vip);
    if (dupVip !== undefined) throw new MemberFileError(source, lineNo, `overlay address ${ip} already listed on line ${dupVip}`);
    keys.set(keyB64, lineNo);
    vips.set(vip, lineNo);
    out.push({ publicKey: keyB64, vip, line: lineNo });
  }
  return out;
}

export class StaticMemberDirectory implements MemberDirectory {
  private readonly byKey = new Map<string, number>();

  constructor(entries: Iterable<{ publicKey: string; vip: number }>) {
    for (const e of entries) this.byKey.set(e.publicKey, e.vip >>> 0);
  }

  static fromFile(path: string): StaticMemberDirectory {
    return new StaticMemberDirectory(parseMemberFile(readFileSync(path, 'utf8'), path));
  }

  static fromText(text: string, source?: string): StaticMemberDirectory {
    return new StaticMemberDirectory(parseMemberFile(text, source));
  }

  get size(): number {
    return this.byKey.size;
  }

  async lookupByKey(publicKey: Uint8Array): Promise<{ vip: number } | undefined> {
    if (publicKey.length !== 32) return undefined;
    const vip = this.byKey.get(Buffer.from(publicKey).toString('base64'));
    return vip === undefined ? undefined : { vip };
  }
}
