/**
 * Error reporting (@sentry/node) when SENTRY_DSN is set; nothing is loaded or sent otherwise.
 * The sandbox launcher points the DSN at its local receiver (sandbox/sentry_receiver.py, project 2
 * for green). Every event carries the release (SENTRY_RELEASE, the source version the launcher
 * computed), the environment (SENTRY_ENVIRONMENT, default "sandbox") and the `color` tag, which is
 * how a reader tells green's exceptions from blue's.
 *
 * Errors are captured explicitly by app.ts's error handler (the 500s green's own code raises).
 *
 * Traces (OpenTelemetry, which @sentry/node 10 is built on): SENTRY_TRACES_SAMPLE_RATE in (0, 1]
 * samples that share of requests as transactions with their spans (fastify, pg, ioredis, outgoing
 * http), sent to the same DSN. Auto-instrumentation patches modules as they are required, so this
 * module is initialised by instrument.ts, which main.ts imports before anything else. Unset or 0:
 * no OpenTelemetry setup at all (skipOpenTelemetrySetup), nothing patched, no overhead.
 */
import * as Sentry from '@sentry/node';

// Not imported from app.ts: importing it would require fastify before the SDK can instrument it.
const COLOR = 'green';

export class SentryConfigError extends Error {}

/** SENTRY_TRACES_SAMPLE_RATE as a number in [0, 1]; a bad value is one clear line at start. */
export function tracesSampleRate(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 0;
  const rate = Number(raw);
  if (!Number.isFinite(rate) || rate < 0 || rate > 1) {
    throw new SentryConfigError(`SENTRY_TRACES_SAMPLE_RATE=${raw}: must be a number in [0, 1]`);
  }
  return rate;
}

export interface ErrorReporter {
  /** Report one exception with the route it happened on and extra tags; returns the event id. */
  capture(error: unknown, tags: Record<string, string>): string;
  /** Send what is queued (stop, and the report_exception check); false on timeout. */
  flush(timeoutMs: number): Promise<boolean>;
  release: string | undefined;
  /** The share of requests traced (0: no tracing). */
  tracesSampleRate: number;
}

export function initErrorReporting(env: Record<string, string | undefined>): ErrorReporter | undefined {
  const dsn = env.SENTRY_DSN;
  if (!dsn) return undefined;
  const release = env.SENTRY_RELEASE || undefined;
  const rate = tracesSampleRate(env.SENTRY_TRACES_SAMPLE_RATE);
  Sentry.init({
    dsn,
    release,
    environment: env.SENTRY_ENVIRONMENT || 'sandbox',
    skipOpenTelemetrySetup: rate === 0,
    tracesSampleRate: rate > 0 ? rate : undefined,
    sendDefaultPii: false,
    initialScope: { tags: { color: COLOR } },
  });
  return {
    release,
    tracesSampleRate: rate,
    capture: (error, tags) => Sentry.withScope((scope) => {
      scope.setTags(tags);
      return Sentry.captureException(error);
    }),
    flush: (timeoutMs) => Sentry.flush(timeoutMs),
  };
}
