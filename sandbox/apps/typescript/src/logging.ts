/**
 * Green's log lines: one JSON object per line (pino), with the field names both colors share
 * (docs/observability.md "Log lines"; Rails writes the same through lograge). Every line has
 * time, level, color and release; the one line per request (kind "request", written when the
 * answer has left) adds request_id, method, path, route, status, duration_ms and served_by.
 * The request id is the caller's X-Request-Id (HAProxy sets one on every routed request) when it
 * is usable, else a new UUID; green echoes it and passes it on when it forwards to blue.
 */
import { randomUUID } from 'node:crypto';

import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import pino, { type DestinationStream, type Logger } from 'pino';

export const REQUEST_ID_HEADER = 'x-request-id';
export const REQUEST_KIND = 'request';
export const UNKNOWN_RELEASE = 'typescript@unknown';
// Probes and scrapes are not logged (Rails' lograge ignores the same): HAProxy checks /readyz
// twice a second and Prometheus scrapes every second, which would drown the requests.
export const UNLOGGED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
// Rails' ActionDispatch::RequestId rule, so both colors keep or clean an id the same way.
const REQUEST_ID_UNSAFE = /[^\w\-@]/g;
const REQUEST_ID_MAX = 255;

export interface LogIdentity {
  color: string;
  release: string;
}

/** The release the launcher names (APP_RELEASE, e.g. "typescript@1a2b3c4"), else an honest unknown. */
export function releaseFrom(env: NodeJS.ProcessEnv): string {
  const value = (env.APP_RELEASE ?? '').trim();
  return value === '' ? UNKNOWN_RELEASE : value;
}

/** The caller's id with unsafe characters removed (as Rails does), or a new UUID when none is left. */
export function requestIdFrom(header: string | string[] | undefined, generate: () => string = randomUUID): string {
  const raw = Array.isArray(header) ? header[0] : header;
  const cleaned = (raw ?? '').replace(REQUEST_ID_UNSAFE, '').slice(0, REQUEST_ID_MAX);
  return cleaned === '' ? generate() : cleaned;
}

/** pino with the shared shape: ISO time, the level as a word, color and release on every line. */
export function createLogger(identity: LogIdentity, destination?: DestinationStream, level = 'info'): Logger {
  const options = {
    level,
    base: { color: identity.color, release: identity.release },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    messageKey: 'msg',
  };
  return destination ? pino(options, destination) : pino(options);
}

export interface RequestLine {
  kind: typeof REQUEST_KIND;
  request_id: string;
  method: string;
  path: string;
  route: string;
  status: number;
  duration_ms: number;
  served_by: string;
  error?: string;
}

/** The request's fields, from what the app recorded on it (route label, implementation). */
export function requestLine(request: FastifyRequest, reply: FastifyReply, error?: Error | null): RequestLine {
  const line: RequestLine = {
    kind: REQUEST_KIND,
    request_id: String(request.id),
    method: request.method,
    path: request.url.split('?', 1)[0],
    route: request.routeLabel,
    status: reply.statusCode,
    duration_ms: Math.round(reply.elapsedTime * 100) / 100,
    served_by: request.servedBy,
  };
  if (error) line.error = `${error.name}: ${error.message}`;
  return line;
}

/**
 * Fastify's per-request logging replaced by one line per request: no "incoming request" line, no
 * "route not found" line (the app's own 404 handler answers), and the completed line in the shared
 * shape, through the root logger (fastify's per-request child would add its own reqId field).
 */
export class RequestLogController extends LogController {
  constructor(private readonly logger: Logger) {
    super();
  }

  override incomingRequest(): void {}

  override routeNotFound(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (UNLOGGED_PATHS.has(request.routeLabel)) return;
    const line = requestLine(request, reply, error);
    if (line.status >= 500 || error) this.logger.error(line);
    else this.logger.info(line);
  }
}
