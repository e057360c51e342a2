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
