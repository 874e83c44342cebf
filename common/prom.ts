/**
 * prom-client metrics that read a daemon's own counters at scrape time (`collect()`), so the
 * hot paths keep counting into plain numbers and metrics add no work per packet. Each part
 * registers its metrics with these (relay/metrics.ts, node-agent/metrics.ts, ...).
 *
 * Names follow the Prometheus conventions: `isthmus_<daemon>_…`, base units in the name
 * (`_bytes`, `_seconds`), `_total` on counters only.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

type Labels = Record<string, string>;

/** A counter whose value is `read()` (a monotonic number the daemon keeps). */
export function counterFrom(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name, help, registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A gauge whose value is `read()`; undefined leaves it without a sample this scrape. */
export function gaugeFrom(registry: Registry, name: string, help: string, read: () => number | undefined | Promise<number | undefined>): void {
  new Gauge({
    name, help, registers: [registry],
    async collect() {
      this.reset();
      const v = await read();
      if (v !== undefined && Number.isFinite(v)) this.set(v);
    },
  });
}

/**
 * A labelled counter or gauge: `read()` yields `[labels, value]` pairs each scrape. Series
 * not yielded disappear (a removed peer), so cardinality follows what the daemon holds.
 */
export function labelledFrom(
  registry: Registry, kind: 'counter' | 'gauge', name: string, help: string, labelNames: readonly string[],
  read: () => Iterable<readonly [Labels, number]>,
): void {
  const registers = [registry];
  if (kind === 'counter') {
    new Counter({
      name, help, labelNames, registers,
      collect() {
        this.reset();
        for (const [l, v] of read()) this.inc(l, v);
      },
    });
  } else {
    new Gauge({
      name, help, labelNames, registers,
      collect() {
        this.reset();
        for (const [l, v] of read()) if (Number.isFinite(v)) this.set(l, v);
      },
    });
  }
}

/** `[{ [label]: key }, value]` for every key of a counter record (drop reasons and the like). */
export function* byLabel<K extends string>(label: string, keys: readonly K[], values: Readonly<Record<K, number>>): Iterable<readonly [Labels, number]> {
  for (const k of keys) yield [{ [label]: k }, values[k] ?? 0] as const;
}
