/**
 * Where the relay gets the access policy and members' tags (issue 10): `RedisPolicySource`
 * in production (`P:policy`, `P:node:<vip>`.tags, `P:events`), an in-memory one in tests
 * (test/harness/memory-policy-source.ts). The relay parses and evaluates only through
 * policy/ (policy-gate.ts); a source hands over text and tag arrays as stored.
 */

import type { EventType } from '../common';

/** What the relay follows (names from common/redis-schema.ts): the policy changed; a member's
 *  tags may have changed (node-up and node-changed both arrive as NodeChanged); a member left. */
export type PolicySourceEvent =
  | { type: typeof EventType.PolicyChanged }
  | { type: typeof EventType.NodeChanged; vip: number }
  | { type: typeof EventType.NodeRemoved; vip: number };

export interface PolicySource {
  /** The policy file text (`P:policy`), null when none is set. Rejects only on backend failure. */
  loadPolicy(): Promise<string | null>;
  /**
   * The member's tags (`P:node:<vip>`.tags): [] when untagged, undefined when `vip` is no
   * member. Rejects only on backend failure. The array is not modified afterwards.
   */
  lookupTags(vip: number): Promise<readonly string[] | undefined>;
  /** Every event; `undefined` after a reconnect (events may have been lost: re-read everything). */
  onEvent(listener: (e: PolicySourceEvent | undefined) => void): void;
}
