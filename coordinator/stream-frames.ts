/**
 * The peer-map stream's wire format (`GET /v1/peers/stream`, docs/PROTOCOL.md §4): one frame per
 * line, three fields separated by one space,
 *
 *   <signature> SP <proof> SP <body> LF
 *
 *   signature  base64 Ed25519 signature, or "-" (unsigned: a coordinator without a signing key,
 *              and heartbeats, which carry nothing)
 *   proof      base64 path to a batch root (answer-signing.ts), or "-" (signed alone)
 *   body       JSON (JSON.stringify never writes a raw LF), the exact bytes signed
 *
 * Bodies (`type`):
 *   open   the first frame: the member's vip, its view id, the version it now holds, the
 *          heartbeat interval, and either the full map (`full: true, peers`) or the changes
 *          after the `since` it asked for (`from, upserts, removals`). Signed as an answer
 *          (route "stream", member vip, since, the request's nonce).
 *   delta  `scope` ("view:<id>" or "member:<vip>"), `from`, `to`, `upserts`, `removals`, and for
 *          member-scoped frames the member's `view` from then on. Signed as a frame
 *          (FrameContext: scope, from). A delta with no changes moves the member's cursor
 *          (the heartbeat's way of keeping cursors of quiet members recent).
 *   beat   `{"type":"beat"}`, unsigned: the connection is alive, nothing changed.
 */
import { createHash } from 'node:crypto';
import type { Peer } from './types';

export const STREAM_CONTENT_TYPE = 'application/x-isthmus-frames; v=1';
/** The heartbeat frame's exact body (the only body accepted unsigned from a signing coordinator). */
export const BEAT_BODY = '{"type":"beat"}';
export const BEAT_LINE = `- - ${BEAT_BODY}\n`;
/** Longest line a member reads (a full map of 100k peers is ~18 MB). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export type OpenFrame = {
  type: 'open';
  vip: string;
  view: string;
  version: number;
  heartbeatMs: number;
} & ({ full: true; peers: Peer[] } | { full: false; from: number; upserts: Peer[]; removals: string[] });

export interface DeltaFrame {
  type: 'delta';
  scope: string;
  from: number;
  to: number;
  upserts: Peer[];
  removals: string[];
  /** Member-scoped frames only: the member's view id from `to` on. */
  view?: string;
}

export type StreamFrame = OpenFrame | DeltaFrame | { type: 'beat' };

/**
 * The view id of a tag set: members with the same tags see the same peers under any policy,
 * so a view-scoped frame is valid for each of them (and for no one else). The same on every
 * coordinator (a hash of the sorted tags), 22 base64url characters.
 */
export function viewOf(tags: readonly string[]): string {
  return createHash('sha256').update([...tags].sort().join('\n')).digest('base64url').slice(0, 22);
}

export const viewScope = (view: string) => `view:${view}`;
export const memberScope = (vip: string) => `member:${vip}`;

/** One frame line: signature and proof (or "-") and the body. */
export function frameLine(body: string, sig?: { signature: string; proof?: string }): Buffer {
  return Buffer.from(`${sig?.signature ?? '-'} ${sig?.proof ?? '-'} ${body}\n`);
}

/** Split a line (without its LF) into its fields; undefined when it is not a frame line. */
export function parseFrameLine(line: string): { signature?: string; proof?: string; body: string } | undefined {
  const a = line.indexOf(' ');
  const b = a < 0 ? -1 : line.indexOf(' ', a + 1);
  if (b < 0) return undefined;
  const sig = line.slice(0, a);
  const proof = line.slice(a + 1, b);
  return { signature: sig === '-' ? undefined : sig, proof: proof === '-' ? undefined : proof, body: line.slice(b + 1) };
}
