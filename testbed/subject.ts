/**
 * A bench subject: one way of carrying vpc1 ↔ vpc2 traffic through the hub (isthmus via its relay,
 * wireguard-go hub-and-spoke, nebula via relay, ...). The runner measures every subject with the
 * same iperf3 and ping commands, from vpc1 to the address the subject gives vpc2's member.
 *
 * To add one: write `testbed/peers/<name>.ts` exporting a factory `() => BenchSubject`, and add it to
 * SUBJECTS in bench/run.ts. Everything a subject starts goes through `topo.spawn`, so the
 * topology's teardown (and its exit/signal handlers) stop it even when teardown() is never reached.
 */
import type { Topology } from './topology';

export interface SubjectEndpoints {
  /** Address of the vpc2 member as seen from vpc1 (iperf3 server binds here, ping targets it). */
  serverAddr: string;
  /** Address of the vpc1 member on the same overlay (iperf3 client binds here). */
  clientAddr: string;
  /** PIDs whose CPU time counts as this subject's (daemons, relays, agents). */
  pids?: () => number[];
}

export interface BenchSubject {
  /** Short name for tables and JSON, e.g. 'isthmus', 'wireguard-go'. */
  readonly name: string;
  /** One line for the report: version and shape, e.g. 'wireguard-go 0.0.20220316 hub-and-spoke'. */
  describe(): Promise<string>;
  /** System tools it runs (installed from Debian by the bench when missing), e.g. ['wireguard-go', 'wg']. */
  readonly requires?: readonly string[];
  /**
   * Why it cannot run on this machine (e.g. a binary that is not installed from Debian is absent),
   * or undefined. The bench skips such a subject with this message instead of failing the run.
   */
  unavailable?(): string | undefined;
  /** Start the subject on `topo`; resolve once vpc1 can address vpc2's member. */
  setup(topo: Topology): Promise<SubjectEndpoints>;
  /** Stop what setup() started (idempotent). */
  teardown(): Promise<void>;
}

export type SubjectFactory = () => BenchSubject;
