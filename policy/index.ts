/**
 * Access policy between members (issue 10): which tags may open flows to which, on which ports.
 * Pure: no I/O, no imports outside this folder, so the coordinator, the relay, the agent and
 * the CLI all evaluate the same rules the same way.
 *
 * @example
 *   const policy = parsePolicy(text);              // throws one PolicyError with path/line/reason
 *   for (const t of unknownTags(policy, tagsInUse)) log.warn({ tag: t }, 'policy names an unknown tag');
 *   const p = compilePolicy(policy);                // or compilePolicy(null): everyone reaches everyone
 *   p.connected(s.tags, a.tags);                    // coordinator peer maps, relay forwarding
 *   const ports = p.inboundFrom(me.tags, peer.tags); // agent: keep per peer, hand to the flow filter
 *   p.canOpen(['controller'], ['agent'], 'tcp', 22); // rule index (explanations), or DENIED
 *
 * Semantics: a rule lets `from` open flows to `to` on `ports` and lets their replies back; not
 * the other way round. Member tags are bare names (`controller`); the file writes `tag:controller`.
 */
export type { Policy, Rule, Selector, PortSpec, FlowProto } from './types';
export { PolicyError, POLICY_ERROR_CODES, type PolicyErrorCode } from './errors';
export { parsePolicy, parsePortSpec, formatPolicy, formatSelector, formatPortSpec, unknownTags, TAG_NAME } from './parse';
export { PortSet } from './port-set';
export { CompiledPolicy, compilePolicy, DENIED, ALLOWED_NO_POLICY } from './evaluate';
