/**
 * Where the relay gets the access policy and members' tags (issue 10): `RedisPolicySource`
 * in production (`P:policy`, `P:node:<vip>`.tags, `P:events`), an in-memory one in tests
 * (test/harness/memory-policy-source.ts). The relay parses and evaluates only through
 * policy/ (policy-gate.ts); a source hands over text and tag arrays as stored.
 */

/** What the relay follows: the policy changed; a member's tags may have changed; a member left. */
export type PolicySourceEvent =
  | { type: 'policy-changed' }
  | { type: 'node-changed'; vip: number }
  | { type: 'node-removed'; vip: number };

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
