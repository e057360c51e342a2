/**
 * Error reporting and tracing, set up before any other module is required: main.ts imports this
 * first, so @sentry/node's OpenTelemetry instrumentation can patch fastify, pg and ioredis as they
 * load (see sentry.ts). A bad SENTRY_TRACES_SAMPLE_RATE is reported by main.ts as a config error.
 */
import { type ErrorReporter, SentryConfigError, initErrorReporting } from './sentry';

export let errorReporter: ErrorReporter | undefined;
export let errorReportingProblem: string | undefined;

try {
  errorReporter = initErrorReporting(process.env);
} catch (error) {
  if (!(error instanceof SentryConfigError)) throw error;
  errorReportingProblem = error.message;
}
