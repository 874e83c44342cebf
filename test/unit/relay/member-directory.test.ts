import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { MemberFileError, StaticMemberDirectory, parseMemberFile } from '../../../relay/member-directory';

const k1 = Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
const k2 = Buffer.from(nacl.box.keyPair().publicKey).toString('base64');

test('parses keys, addresses, comments and blank lines', async (t) => {
  const text = `# members\n\n${k1} 100.64.0.1   # a1\n  ${k2}\t100.64.0.2\n`;
  const entries = parseMemberFile(text, 'm.txt');
  t.deepEqual(entries.map((e) => [e.publicKey, e.vip, e.line]), [[k1, 0x64400001, 3], [k2, 0x64400002, 4]]);
  const dir = StaticMemberDirectory.fromText(text);
  t.deepEqual(await dir.lookupByKey(Buffer.from(k2, 'base64')), { vip: 0x64400002 });
  t.is(await dir.lookupByKey(new Uint8Array(32)), undefined);
  t.is(await dir.lookupByKey(new Uint8Array(3)), undefined);
});

const bad: [string, number, RegExp][] = [
  [`${k1}\n${k1.slice(1)} 100.64.0.2`, 1, /2 field|1 field/],
  [`${k1} 100.64.0.1\nnotbase64!! 100.64.0.2`, 2, /base64/],
  [`${k1} 100.64.0.1\n\n${k2} 100.64.0.300`, 3, /not an IPv4 address/],
  [`${k1} 100.64.0.1\n${k1} 100.64.0.2`, 2, /already listed on line 1/],
  [`${k1} 100.64.0.1\n${k2} 100.64.0.1`, 2, /already listed on line 1/],
  [`${k1} 100.64.0.1 extra`, 1, /3 field/],
  [`${k1} 0.0.0.0`, 1, /0\.0\.0\.0/],
  [`${Buffer.alloc(16).toString('base64')} 100.64.0.1`, 1, /32 bytes/],
];

for (const [i, [text, line, re]] of bad.entries()) {
  test(`bad input #${i} names its line: ${re}`, (t) => {
    const e = t.throws(() => parseMemberFile(text, 'members.txt'), { instanceOf: MemberFileError })!;
    t.is(e.line, line);
    t.is(e.code, 'ERR_MEMBER_FILE');
    t.regex(e.message, new RegExp(`^members\\.txt:${line}: `));
    t.regex(e.message, re);
  });
}

test('fromFile reads a file and names it in errors', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-relay-'));
  try {
    const p = join(dir, 'members');
    writeFileSync(p, `${k1} 100.64.0.1\n`);
    t.is(StaticMemberDirectory.fromFile(p).size, 1);
    writeFileSync(p, `${k1} 100.64.0.1\nbroken\n`);
    const e = t.throws(() => StaticMemberDirectory.fromFile(p), { instanceOf: MemberFileError })!;
    t.true(e.message.startsWith(`${p}:2:`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
