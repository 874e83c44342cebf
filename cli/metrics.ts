/**
 * `--metrics HOST:PORT` for every daemon: a prom-client registry with the daemon's own
 * metrics (registered by its part) plus the process defaults, served with /healthz and
 * /readyz by common/metrics-server.ts. The bound address is logged ("metrics listening",
 * `metrics: http://HOST:PORT`), so port 0 works.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { serveMetrics, serveReadinessPort, runReadinessChecks, type Logger, type MetricsServer, type ReadinessCheck } from '../common';
import { onShutdown } from './shutdown';
import { parseHostPort } from './flag-values';

export const METRICS_OPTION = {
  type: 'string',
  describe: 'Serve Prometheus metrics (GET /metrics) and health (GET /healthz, /readyz) on HOST:PORT; port 0 picks one (logged)',
} as const;

/** "HOST:PORT" ("[v6]:PORT" too) → parts; the message names the flag. */
export function parseListenFlag(value: string, flag: string): { host: string; port: number } {
  return parseHostPort(value, flag, { example: '127.0.0.1:9100' });
}

/** prom-client defaults that are gauges named `_total`, which the Prometheus naming rules (promtool) refuse. */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** A registry with prom-client's process_* and nodejs_* metrics, less the misnamed ones. */
export function daemonRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
  return registry;
}

export interface DaemonMetrics {
  server: MetricsServer;
  registry: Registry;
}

/**
 * Start the metrics listener on `flag` (the value of --metrics): `register` adds the
 * daemon's metrics, `checks` decide /readyz. Closed first on shutdown (hooks run in reverse),
 * so load balancers stop sending before the daemon stops serving.
 */
export async function startMetrics(
  value: string, log: Logger, register: (r: Registry) => void, checks: Record<string, ReadinessCheck>,
): Promise<DaemonMetrics> {
  const { host, port } = parseListenFlag(value, '--metrics');
  const registry = daemonRegistry();
  register(registry);
  const server = await serveMetrics({ host, port, registry, checks });
  onShutdown(() => server.close());
  const a = server.address;
  log.info({ metrics: `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}` }, 'metrics listening');
  return { server, registry };
}

/**
 * `--health-tcp HOST:PORT`: a TCP port open only while `checks` pass, for connect-only
 * checkers. Logs each change ("health port open" / "health port closed").
 */
export async function startHealthPort(value: string, log: Logger, checks: Record<string, ReadinessCheck>): Promise<void> {
  const { host, port } = parseListenFlag(value, '--health-tcp');
  const p = await serveReadinessPort({
    host, port,
    ready: async () => (await runReadinessChecks(checks)).ready,
    onChange: (listening, a) => log.info({ healthTcp: `${a.host}:${a.port}` }, listening ? 'health port open' : 'health port closed'),
  });
  onShutdown(() => p.close());
}
