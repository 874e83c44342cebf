/**
 * The metrics listener each daemon opens with `--metrics HOST:PORT` (node:http, one small
 * server apart from the daemon's own ports, so a scrape or a load balancer's probe never
 * queues behind API traffic):
 *
 *   GET /metrics  the registry in the Prometheus text format (prom-client's `Registry`)
 *   GET /healthz  200 `{"ok":true}` while the process answers at all (liveness)
 *   GET /readyz   200 when every readiness check passes, else 503; the body names each check:
 *                 `{"ready":false,"checks":{"redis":false,"socket":true}}`
 *
 * Plus `serveReadinessPort`: a TCP port that listens only while the daemon is ready, for load
 * balancers whose checker can only connect (LVS/keepalived TCP_CHECK, nftables scripts).
 *
 * This file knows no other part: the registry and Redis are structural interfaces.
 */
import http from 'node:http';
import net from 'node:net';

/** What `/metrics` serves: prom-client's `Registry` fits. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** One readiness condition; a throw or a timeout counts as not ready. */
export type ReadinessCheck = () => boolean | Promise<boolean>;

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, boolean>;
}

export interface MetricsServerOptions {
  host: string;
  /** 0: an ephemeral port, see `address` */
  port: number;
  registry: MetricsSource;
  /** Named readiness checks run by `/readyz` (none: ready while alive). */
  checks?: Record<string, ReadinessCheck>;
  /** A check still running after this long fails. @default 1000 */
  checkTimeoutMs?: number;
}

export interface MetricsServer {
  /** The bound address (port 0 resolved). */
  readonly address: { host: string; port: number };
  /** Run the readiness checks, as `/readyz` does. */
  ready(): Promise<ReadinessReport>;
  close(): Promise<void>;
}

export const DEFAULT_CHECK_TIMEOUT_MS = 1000;

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
  try {
    return await Promise.race([Promise.resolve().then(check).then((ok) => ok === true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run named checks in parallel; ready only when all pass. */
export async function runReadinessChecks(checks: Record<string, ReadinessCheck>, timeoutMs = DEFAULT_CHECK_TIMEOUT_MS): Promise<ReadinessReport> {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((n) => runCheck(checks[n]!, timeoutMs)));
  const out: Record<string, boolean> = {};
  names.forEach((n, i) => { out[n] = results[i]!; });
  return { ready: results.every(Boolean), checks: out };
}

/** A Redis client is ready when connected and answering PING; ioredis' `Redis` fits. */
export function redisReadiness(client: { readonly status: string; ping(): Promise<unknown> }): ReadinessCheck {
  // Without the status test a PING would wait in the offline queue through reconnect attempts.
  return async () => client.status === 'ready' && await client.ping() === 'PONG';
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export async function serveMetrics(o: MetricsServerOptions): Promise<MetricsServer> {
  const checks = o.checks ?? {};
  const timeoutMs = o.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const ready = () => runReadinessChecks(checks, timeoutMs);
  const json = 'application/json; charset=utf-8';
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, json, '{"error":"method-not-allowed"}\n');
    if (path === '/healthz') return send(res, 200, json, '{"ok":true}\n');
    if (path === '/readyz') {
      void ready().then((r) => send(res, r.ready ? 200 : 503, json, `${JSON.stringify(r)}\n`));
      return;
    }
    if (path === '/metrics') {
      o.registry.metrics().then(
        (text) => send(res, 200, o.registry.contentType, text),
        (err: Error) => send(res, 500, 'text/plain; charset=utf-8', `metrics failed: ${err.message}\n`),
      );
      return;
    }
    send(res, 404, json, '{"error":"no-route","routes":["/metrics","/healthz","/readyz"]}\n');
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => { server.removeListener('error', reject); resolve(); });
  });
  const a = server.address() as net.AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    ready,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

export interface ReadinessPortOptions {
  host: string;
  /** 0: an ephemeral port, chosen at the first listen and kept across re-listens */
  port: number;
  ready(): Promise<boolean>;
  /** How often readiness is re-checked. @default 1000 */
  intervalMs?: number;
  /** Told each time the port opens or closes. */
  onChange?(listening: boolean, address: { host: string; port: number }): void;
}

export interface ReadinessPort {
  /** The port, once it has listened (port 0 resolved). */
  readonly address: { host: string; port: number };
  readonly listening: boolean;
  /** Check now (the timer does it every intervalMs). */
  update(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP port that accepts connections only while `ready()` holds: a connect-only checker
 * sees the daemon as down (connection refused) while it is not ready. Accepted connections
 * are closed at once; nothing is read.
 */
export async function serveReadinessPort(o: ReadinessPortOptions): Promise<ReadinessPort> {
  let port = o.port;
  let server: net.Server | undefined;
  let closed = false;
  let busy: Promise<void> | undefined;
  const address = () => ({ host: o.host, port });
  const open = () => new Promise<void>((resolve, reject) => {
    const s = net.createServer((c) => c.end());
    s.once('error', reject);
    s.listen(port, o.host, () => {
      s.removeListener('error', reject);
      port = (s.address() as net.AddressInfo).port;
      server = s;
      resolve();
    });
  });
  const shut = () => new Promise<void>((resolve) => {
    const s = server;
    server = undefined;
    if (!s) return resolve();
    s.close(() => resolve());
  });
  const step = async () => {
    const want = !closed && await o.ready().catch(() => false);
    if (want && !server && !closed) {
      await open();
      o.onChange?.(true, address());
    } else if (!want && server) {
      await shut();
      o.onChange?.(false, address());
    }
  };
  const update = () => {
    busy ??= step().finally(() => { busy = undefined; });
    return busy;
  };
  await update();
  const timer = setInterval(() => { update().catch(() => undefined); }, o.intervalMs ?? 1000);
  timer.unref();
  return {
    get address() { return address(); },
    get listening() { return server !== undefined; },
    update,
    async close() {
      closed = true;
      clearInterval(timer);
      await busy?.catch(() => undefined);
      await shut();
    },
  };
}
