/** An answer with a status code and a one-line reason: `{"error": message}` on the wire. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'HttpError';
  }
}

export class DatabaseUnavailable extends HttpError {
  constructor(message: string) {
    super(503, `database unavailable: ${message}`);
    this.name = 'DatabaseUnavailable';
  }
}

/** The error fault's failure (error_fraction): thrown in the request like a real defect, so error
 * tracking reports it under this type (blue raises Cutover::InjectedFaultError for the same fault). */
export class InjectedFaultError extends Error {
  constructor(message = 'injected fault') {
    super(message);
    this.name = 'InjectedFaultError';
  }
}

/** Thrown on purpose by POST /__fault/report_exception (stage 4's check that error reporting
 * reaches Sentry): caught and reported at once, never a 5xx, so no SLO counts it. */
export class ErrorReportingCheck extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ErrorReportingCheck';
  }
}
