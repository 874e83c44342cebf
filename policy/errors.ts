/**
 * The one error a policy file can be refused with. `code` is machine-readable (kebab-case, as
 * the coordinator's API codes are); `path` names the offending value (`rules[2].ports[1]`,
 * '' for the whole document); `line`/`column` (1-based) locate it in the text when the text
 * was parsed by `parsePolicy`. The message repeats all of it so a CLI can print it as is.
 */
export const POLICY_ERROR_CODES = [
  'invalid-json', // not JSON at all (the position says where it stops being JSON)
  'duplicate-key', // one object names a field twice: JSON.parse would silently keep the last
  'too-deep', // nesting beyond anything a policy needs (bounded so parsing cannot overflow the stack)
  'unknown-field', // a field the format does not have (a typo must not silently widen or narrow access)
  'missing-field', // a required field is absent
  'wrong-type', // e.g. a string where a list belongs
  'empty-list', // a list that must name something names nothing
  'bad-selector', // not `*` or `tag:NAME` with a valid tag name
  'bad-port', // not tcp/N, tcp/N-M, udp/N, udp/N-M, icmp or `*`, or N outside 1..65535, or N > M
] as const;
export type PolicyErrorCode = (typeof POLICY_ERROR_CODES)[number];

export class PolicyError extends Error {
  override name = 'PolicyError';
  constructor(
    readonly code: PolicyErrorCode,
    readonly path: string,
    readonly reason: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(`${path || 'policy'}${line === undefined ? '' : ` (line ${line}, column ${column})`}: ${reason}`);
  }
}
