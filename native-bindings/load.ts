/**
 * Finds and loads the compiled addon. Linux-only and optional at runtime:
 * `nativeAvailable()` says whether it loaded; `loadNative()` throws a
 * NativeBindingMissingError that says what to run.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeBindingMissingError } from './errors';

type AeadFn = (
  keys: Uint8Array, keyIndex: Uint32Array | null, data: Uint8Array, offsets: Uint32Array,
  lengths: Uint32Array, counters: BigUint64Array, count: number, ok: Uint8Array | null,
) => number;

/** The raw functions exported by src/binding.c . */
/** Adaptive busy-polling counters (busy-poll.ts). */
export interface BusyPollStats {
  /** The budget now in force, microseconds (0: off). */
  budgetUs: number;
  /** Rounds started: callbacks with traffic followed by zero-timeout polling. */
  rounds: number;
  /** Drains inside a round that found packets (each one a wake-up saved). */
  hits: number;
  /** Packets those drains read. */
  packets: number;
  /** Nanoseconds spent polling inside rounds, handlers excluded (the CPU busy-polling costs). */
  spinNs: number;
  /** Rounds ended by the total cap (8 × budget, at least 200 µs) while traffic kept coming. */
  capped: number;
  /** Rounds ended by a drain of 8 packets or more (bulk traffic: left to batching). */
  bulk: number;
}

export interface NativeBinding {
  sizeof_isthmus_io_t: number;
  STAT_COUNT: number;
  STAT_RX_PACKETS: number;
  STAT_RX_BATCHES: number;
  STAT_TX_PACKETS: number;
  STAT_TX_DROPS: number;
  STAT_RX_TRUNCATED: number;
  STAT_RX_ERRORS: number;
  STAT_OFFLOAD_MALFORMED: number;
  STAT_RX_SUPER: number;
  STAT_TX_SUPER: number;
  VNET_HDR_LEN: number;
  UDP_MAX_BATCH: number;
  /** offload: try IFF_VNET_HDR + TSO (src/offload_linux.h); the answer says whether it is on. */
  tunOpen(handle: Buffer, name: string, offload: boolean): { name: string; offload: boolean };
  tunConfigure(handle: Buffer, mtu: number, addr: number, prefixLen: number, up: boolean): void;
  udpOpen(handle: Buffer, host: number, port: number, reusePort: boolean, bufBytes: number): number;
  ioInit(
    handle: Buffer, ctx: object, onread: (count: number) => void, stats: Float64Array,
    batch: number, slotSize: number, headroom: number,
    rxSlab: Buffer, rxLengths: Uint32Array, rxAddrs: Uint32Array | null, rxPorts: Uint32Array | null,
    txSlab: Buffer, txLengths: Uint32Array, txAddrs: Uint32Array | null, txPorts: Uint32Array | null,
  ): void;
  ioStart(handle: Buffer): void;
  /** ext/extOffsets: packet i is sent from ext[extOffsets[i]] unless that is 0xffffffff (tx slot i). */
  ioFlush(handle: Buffer, count: number, ext?: Uint8Array | null, extOffsets?: Uint32Array | null): number;
  ioClose(handle: Buffer): void;
  /** Busy-poll budget in microseconds for every handle of this thread (0: off; src/busy_poll.h). */
  busyPoll(microseconds: number): void;
  busyPollStats(): BusyPollStats;
  aeadSealBatch?: AeadFn;
  aeadOpenBatch?: AeadFn;
  /** Tests: the TSO split of one read (vnet header + packet) into segments <= maxLen; null: malformed (dropped). */
  offloadSplit(input: Uint8Array, maxLen: number): Buffer[] | null;
  /** Tests: what one TUN write batch of these packets becomes, each with its vnet header. */
  offloadCoalesce(packets: Uint8Array[]): Buffer[];
  /** Relay fast path (src/relay_fast.h), on an open UDP handle; see relay-fast.ts. */
  RF_STAT_COUNT: number;
  rfAttach(handle: Buffer, counters: Float64Array, offsets: Uint32Array, dataType: number, minPayload: number): void;
  rfEnable(handle: Buffer, on: boolean): void;
  rfSet(handle: Buffer, vip: number, addr: number, port: number, cls: number): void;
  rfDelete(handle: Buffer, vip: number): boolean;
  rfClear(handle: Buffer): void;
  rfSize(handle: Buffer): number;
  rfPolicy(handle: Buffer, mode: number): void;
  rfVerdict(handle: Buffer, a: number, b: number, verdict: number): void;
  rfDrainSeen(handle: Buffer, out: Uint32Array): number;
}

const FILE = 'isthmus_native.node';

/** Source tree (tsx) and compiled output (dist/native-bindings) layouts. */
function candidates(): string[] {
  const dirs = [__dirname, join(__dirname, '..', '..', 'native-bindings')];
  const out: string[] = [];
  for (const d of dirs) {
    out.push(join(d, 'build', 'Release', FILE), join(d, 'build', 'Debug', FILE));
  }
  return out;
}

let cached: NativeBinding | undefined;
let loadError: string | undefined;

export function loadNative(): NativeBinding {
  if (cached) return cached;
  if (loadError === undefined) {
    if (process.platform !== 'linux') {
      loadError = `unsupported platform ${process.platform}`;
    } else {
      const found = candidates().find((p) => existsSync(p));
      if (!found) {
        loadError = `looked in ${candidates().join(', ')}`;
      } else {
        try {
          cached = require(found) as NativeBinding;
          return cached;
        } catch (err) {
          loadError = `${found}: ${(err as Error).message}`;
        }
      }
    }
  }
  throw new NativeBindingMissingError(loadError);
}

/** True when the addon is built and loadable here. Never throws. */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}
