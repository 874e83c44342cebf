/**
 * Known-answer tests of the generic Noise layer against the cacophony vectors in
 * /work/shared/vectors/noise-blake2s.json (NN, IK, IKpsk2 with BLAKE2s): handshake hash and
 * every message ciphertext, including transport messages after Split().
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { HandshakeState, type CipherState } from '../../../protocol/noise-state';

const VECTORS_PATH = path.join(__dirname, '../../../../shared/vectors/noise-blake2s.json');

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_psks?: string[];
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  resp_prologue: string;
  resp_psks?: string[];
  resp_static?: string;
  resp_ephemeral: string;
  resp_remote_static?: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

function loadVectors(): Vector[] {
  if (!fs.existsSync(VECTORS_PATH)) {
    throw new Error(`Noise test vectors not found at ${VECTORS_PATH} (expected /work/shared/vectors/noise-blake2s.json)`);
  }
  return (JSON.parse(fs.readFileSync(VECTORS_PATH, 'utf8')) as { vectors: Vector[] }).vectors;
}

const hex = (s: string | undefined): Buffer | undefined => (s === undefined ? undefined : Buffer.from(s, 'hex'));
const kp = (s: string | undefined) => (s === undefined ? undefined : HandshakeState.fixedKeyPair(Buffer.from(s, 'hex')));

test('vector file exists', (t) => {
  t.true(fs.existsSync(VECTORS_PATH), `missing ${VECTORS_PATH}`);
});

for (const name of ['Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', 'Noise_IK_25519_ChaChaPoly_BLAKE2s', 'Noise_NN_25519_ChaChaPoly_BLAKE2s']) {
  test(`cacophony vector ${name}`, (t) => {
    const v = loadVectors().find((x) => x.protocol_name === name);
    if (!v) return t.fail(`vector ${name} not in ${VECTORS_PATH}`);
    const init = new HandshakeState({
      protocolName: name, initiator: true, prologue: hex(v.init_prologue),
      s: kp(v.init_static), e: kp(v.init_ephemeral), rs: hex(v.init_remote_static), psks: v.init_psks?.map((p) => Buffer.from(p, 'hex')),
    });
    const resp = new HandshakeState({
      protocolName: name, initiator: false, prologue: hex(v.resp_prologue),
      s: kp(v.resp_static), e: kp(v.resp_ephemeral), rs: hex(v.resp_remote_static), psks: v.resp_psks?.map((p) => Buffer.from(p, 'hex')),
    });
    let iTransport: { send: CipherState; recv: CipherState } | undefined;
    let rTransport: { send: CipherState; recv: CipherState } | undefined;
    v.messages.forEach((m, i) => {
      const payload = Buffer.from(m.payload, 'hex');
      const fromInitiator = i % 2 === 0;
      let ct: Buffer;
      let pt: Buffer | undefined;
      if (!iTransport) {
        const [w, r] = fromInitiator ? [init, resp] : [resp, init];
        ct = w.writeMessage(payload);
        pt = r.readMessage(ct);
        if (init.finished && resp.finished) {
          t.is(init.handshakeHash.toString('hex'), v.handshake_hash, 'initiator handshake hash');
          t.is(resp.handshakeHash.toString('hex'), v.handshake_hash, 'responder handshake hash');
          iTransport = init.split();
          rTransport = resp.split();
        }
      } else {
        const [w, r] = fromInitiator ? [iTransport.send, rTransport!.recv] : [rTransport!.send, iTransport.recv];
        ct = w.encryptWithAd(Buffer.alloc(0), payload);
        pt = r.decryptWithAd(Buffer.alloc(0), ct);
      }
      t.is(ct.toString('hex'), m.ciphertext, `message ${i} ciphertext`);
      t.deepEqual(pt, payload, `message ${i} decrypts`);
    });
    t.truthy(iTransport, 'handshake finished');
  });
}
