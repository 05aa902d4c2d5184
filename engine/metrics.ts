/**
 * Prometheus metrics (prom-client). One registry per engine so tests and several engines in a process do
 * not collide; `/metrics` serves it.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The engine's metrics. Plugins add their own to `registry`. */
export interface EngineMetrics {
  readonly registry: Registry;
  readonly commandsTotal: Counter<'command' | 'transport' | 'outcome'>;
  readonly commandErrors: Counter<'command' | 'code'>;
  readonly commandDuration: Histogram<'command' | 'transport'>;
}

/** Create the metrics registry; default process metrics are added unless `defaults` is false. */
export function createMetrics(defaults = true): EngineMetrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'solescope_' });
  return {
    registry,
    commandsTotal: new Counter({
      name: 'solescope_commands_total',
      help: 'Commands run, by command, transport and outcome (ok, error, denied).',
      labelNames: ['command', 'transport', 'outcome'],
      registers: [registry],
    }),
    commandErrors: new Counter({
      name: 'solescope_command_errors_total',
      help: 'Command failures by error code.',
      labelNames: ['command', 'code'],
      registers: [registry],
    }),
    commandDuration: new Histogram({
      name: 'solescope_command_duration_seconds',
      help: 'Command latency in seconds.',
      labelNames: ['command', 'transport'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
      registers: [registry],
    }),
  };
}
