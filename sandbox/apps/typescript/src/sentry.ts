/**
 * Error reporting (@sentry/node) when SENTRY_DSN is set; nothing is loaded or sent otherwise.
 * The sandbox launcher points the DSN at its local receiver (sandbox/sentry_receiver.py, project 2
 * for green). Every event carries the release (SENTRY_RELEASE, the source version the launcher
 * computed), the environment (SENTRY_ENVIRONMENT, default "sandbox") and the `color` tag, which is
 * how a reader tells green's exceptions from blue's.
 *
 * The SDK is initialised after fastify is loaded, so its OpenTelemetry auto-instrumentation would
 * patch nothing: it is skipped (skipOpenTelemetrySetup) and no traces are sampled. Errors are
 * captured explicitly by app.ts's error handler (the 500s green's own code raises), which is
 * what Sentry.setupFastifyErrorHandler would do, without its tracing prerequisites.
 */
import * as Sentry from '@sentry/node';

import { COLOR } from './app';

export interface ErrorReporter {
  /** Report one exception with the route it happened on and extra tags; returns the event id. */
  capture(error: unknown, tags: Record<string, string>): string;
  /** Send what is queued (stop, and the report_exception check); false on timeout. */
  flush(timeoutMs: number): Promise<boolean>;
  release: string | undefined;
}

export function initErrorReporting(env: Record<string, string | undefined>): ErrorReporter | undefined {
  const dsn = env.SENTRY_DSN;
  if (!dsn) return undefined;
  const release = env.SENTRY_RELEASE || undefined;
  Sentry.init({
    dsn,
    release,
    environment: env.SENTRY_ENVIRONMENT || 'sandbox',
    skipOpenTelemetrySetup: true,
    tracesSampleRate: undefined,
    sendDefaultPii: false,
    initialScope: { tags: { color: COLOR } },
  });
  return {
    release,
    capture: (error, tags) => Sentry.withScope((scope) => {
      scope.setTags(tags);
      return Sentry.captureException(error);
    }),
    flush: (timeoutMs) => Sentry.flush(timeoutMs),
  };
}
