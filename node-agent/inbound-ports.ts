/**
 * A peer's `inbound` port specs (coordinator peer maps, or `Inbound =` in a config file's
 * [Peer]) compiled into the PortSet the flow filter reads per packet (flow-filter.ts).
 *
 * Compiled when a peer entry arrives, never per packet: the Peer object holds the result, so
 * the data path needs no lookup by tags or specs. Memoised by the spec text: a controller
 * holding 100,000 agents sees a handful of distinct lists, so it holds a handful of sets
 * (8 KiB per TCP/UDP bitmap), shared by every peer with the same list.
 *
 * Missing (`undefined`: an older coordinator, a config peer without `Inbound`) means `*`: the
 * member behaves as before policy existed. A spec that does not parse is left out and
 * reported: it can only narrow what the peer may open, never widen it.
 */
import { PortSet, formatPortSpec, parsePortSpec, type PortSpec } from '../policy';

/** Distinct lists kept; beyond this the memo starts over (sets stay valid, they are immutable). */
const MEMO_LIMIT = 1024;
const memo = new Map<string, PortSet>();

/**
 * The PortSet for `specs`; `onBad(spec, reason)` hears of each spec left out.
 * `undefined` → PortSet.ALL; `[]` → PortSet.NONE.
 */
export function compileInbound(specs: readonly string[] | undefined, onBad?: (spec: string, reason: string) => void): PortSet {
  if (specs === undefined) return PortSet.ALL;
  // JSON, not join(','): a malformed spec holding a comma must not share a key with a valid list.
  const key = JSON.stringify(specs);
  const hit = memo.get(key);
  if (hit) return hit;
  const parsed: PortSpec[] = [];
  let bad = false;
  specs.forEach((s, i) => {
    try {
      parsed.push(parsePortSpec(s, `inbound[${i}]`));
    } catch (err) {
      bad = true;
      onBad?.(String(s), (err as Error).message);
    }
  });
  const set = PortSet.of(parsed);
  if (!bad) { // a list with bad specs is compiled again next time, so each arrival is reported
    if (memo.size >= MEMO_LIMIT) memo.clear();
    memo.set(key, set);
  }
  return set;
}

/** The set as spec strings, for `isthmus status`: `*`, or e.g. `tcp/22, icmp`, or `none`. */
export function describeInbound(set: PortSet): string {
  if (set.all) return '*';
  if (set.isEmpty()) return 'none';
  return set.specs.map(formatPortSpec).join(',');
}
