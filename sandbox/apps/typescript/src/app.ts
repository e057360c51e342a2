/**
 * Green, the TypeScript rewrite, as a fastify app (built here, started by main.ts; tests drive it
 * with inject()). The sandbox's contract for every color (sandbox/faults.py, sandbox/traffic.py, the smoke checks): every response carries `X-App-Color: green`
 * and `X-Served-By: typescript|rails` (which implementation's code produced the answer, read by
 * the traffic ledger); /healthz, /readyz (database and schema version), /metrics, the loopback-only
 * /__fault and /__flags, `X-Cutover-Serve` on direct requests, and the strangler pattern: an API
 * request whose feature flag is off for it is forwarded to blue (Rails) and answered with blue's
 * status and body. Injected faults model a defect in green's new code, so they hit only what
 * green serves itself; forwarded requests are counted apart from green's SLI series.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

import { HANDLERS, type ApiResult } from './api';
import { type Queryable, SchemaGate, sqlState } from './db';
import { ErrorReportingCheck, HttpError, InjectedFaultError } from './errors';
import {
  CRASH_EXIT_CODE, ConcurrencyLimiter, FaultState, answerHeaders, drawWriteFault, driftBody, errorPayload,
  parseFaultRequest,
} from './faults';
import type { RailsForwarder } from './forward';
import { REQUEST_ID_HEADER, RequestLogController, UNKNOWN_RELEASE, createLogger, requestIdFrom } from './logging';
import type { Metrics } from './metrics';
import { OPENAPI_DOCUMENT } from './openapi';
import type { ErrorReporter } from './sentry';
import {
  API_ROUTES, EXPERIMENT_ROUTE, FORCE_SERVE_HEADER, type ApiRoute, type FlagEvaluator, type Impl, RAILS, TYPESCRIPT,
  USER_ID_HEADER, VIA_ROUTER_HEADER, decideImpl, flagsReport, matchApiRoute, requestUserId,
} from './routes';

export const MAX_BODY_BYTES = 64 * 1024;
export const COLOR = 'green';
export const UNMATCHED_ROUTE = 'unmatched'; // one label for every unknown path keeps cardinality bounded
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
const ALL_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
// SQLSTATEs of a schema that went back (down migration) within the schema gate's cache window.
const SCHEMA_GONE = new Set(['42703', '42704', '42P01']);

export interface AppDeps {
  db: Queryable;
  metrics: Metrics;
  flags?: FlagEvaluator;
  rails?: Pick<RailsForwarder, 'forward'>;
  schema?: SchemaGate;
  faults?: FaultState;
  /** Queues an order's confirmation job after its commit (BullMQ in production). */
  confirmOrder?: (orderId: number) => Promise<unknown>;
  random?: () => number;
  /** How a crash request ends the process (tests replace it). */
  exit?: (code: number) => void;
  log?: (message: string) => void;
  /** Where the one JSON line per request goes (src/logging.ts); silent unless given. */
  logger?: Logger;
  /** Error tracking (src/sentry.ts) when a DSN is configured: every 500 green's code raises is reported. */
  errors?: ErrorReporter;
}

declare module 'fastify' {
  interface FastifyRequest {
    routeLabel: string;
    servedBy: Impl;
    jsonBody: unknown;
  }
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const schema = deps.schema ?? new SchemaGate(deps.db);
  const faults = deps.faults ?? new FaultState();
  const capacity = new ConcurrencyLimiter(() => faults.snapshot().max_concurrent);
  const random = deps.random ?? Math.random;
  const exit = deps.exit ?? ((code: number) => process.exit(code));
  const log = deps.log ?? ((message: string) => process.stderr.write(`green: ${message}\n`));
  const logger = deps.logger ?? createLogger({ color: COLOR, release: UNKNOWN_RELEASE }, undefined, 'silent');
  const app = Fastify({
    loggerInstance: logger, logController: new RequestLogController(logger),
    // The id is the caller's X-Request-Id (HAProxy's unique id) when usable, else a new one.
    requestIdHeader: false, genReqId: (raw) => requestIdFrom(raw.headers[REQUEST_ID_HEADER]),
    bodyLimit: MAX_BODY_BYTES, keepAliveTimeout: 120_000, return503OnClosing: true,
  }) as unknown as FastifyInstance;

  // Bodies are read raw: green forwards them to Rails byte for byte, and parses JSON itself
  // whatever the Content-Type says (as the Python app did), with its own 400 message.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.decorateRequest('routeLabel', UNMATCHED_ROUTE);
  app.decorateRequest('servedBy', TYPESCRIPT);
  app.decorateRequest('jsonBody', undefined);

  app.addHook('preHandler', async (request) => {
    request.jsonBody = parseJsonBody(request.body);
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('X-App-Color', COLOR);
    reply.header('X-Served-By', request.servedBy);
    reply.header('X-Request-Id', request.id);
    // Rails' default security headers, unless the insecure fault removes them (or adds X-Powered-By).
    for (const [name, value] of Object.entries(answerHeaders(faults.snapshot().weakness))) {
      if (!reply.hasHeader(name)) reply.header(name, value);
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const seconds = reply.elapsedTime / 1000;
    if (request.servedBy === RAILS) {
      deps.metrics.observeForwarded(request.method, request.routeLabel, reply.statusCode, seconds);
    } else if (request.routeLabel !== '/metrics') { // scrapes would otherwise dominate the counts
      deps.metrics.observe(request.method, request.routeLabel, reply.statusCode, seconds);
    }
  });

  app.setErrorHandler(async (error, request, reply) => {
    const weakness = faults.snapshot().weakness;
    const stack = (error as Error).stack;
    if (error instanceof HttpError) return reply.code(error.status).send(errorPayload(weakness, error.message, stack));
    if (error instanceof InjectedFaultError) {
      deps.errors?.capture(error, { route: request.routeLabel });
      return reply.code(500).header('X-Fault-Injected', '1').send({ error: error.message });
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) { // fastify's own: 413 body too large, 415...
      return reply.code(status).send(errorPayload(weakness, (error as Error).message, stack));
    }
    const message = `unhandled error on ${request.method} ${request.routeLabel}: ${stack ?? String(error)}`;
    // An error line with the request's id, so a halt's excerpt shows it beside the 500 it caused.
    if (deps.logger) deps.logger.error({ request_id: String(request.id) }, message);
    else log(message);
    deps.errors?.capture(error, { route: request.routeLabel });
    return reply.code(500).send(errorPayload(weakness, 'internal error', stack));
  });

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?', 1)[0];
    const { pathKnown } = matchApiRoute(request.method, path);
    return reply.code(pathKnown ? 405 : 404)
      .send(errorPayload(faults.snapshot().weakness, `no route for ${request.method} ${path}`, undefined));
  });

  // ---------------------------------------------------------------------------------- ops

  const getOnly = (path: string, handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>) => {
    app.route({ method: [...ALL_METHODS], url: path, handler: async (request, reply) => {
      request.routeLabel = path;
      if (path === '/__flags') loopbackOnly(request, path);
      if (request.method !== 'GET' && request.method !== 'HEAD') throw new HttpError(405, `${path} only supports GET`);
      return handler(request, reply);
    } });
  };

  getOnly('/healthz', async () => ({ status: 'alive', color: COLOR }));
  getOnly('/readyz', async (_request, reply) => {
    await deps.db.query('SELECT 1 AS ok'); // DatabaseUnavailable -> 503
    const problem = await schema.problem();
    if (problem) return reply.code(503).send({ status: 'not ready', color: COLOR, error: problem });
    return { status: 'ready', color: COLOR };
  });
  getOnly('/metrics', async (_request, reply) => {
    reply.header('Content-Type', deps.metrics.contentType());
    return deps.metrics.exposition();
  });
  getOnly('/openapi.json', async () => OPENAPI_DOCUMENT);
  getOnly('/__flags', async () => flagsReport(deps.flags));

  app.route({ method: [...ALL_METHODS], url: '/__fault', handler: async (request, reply) => {
    request.routeLabel = '/__fault';
    loopbackOnly(request, 'fault control');
    if (request.method === 'GET') return faults.snapshot();
    if (request.method === 'DELETE') return faults.clear();
    if (request.method !== 'POST') throw new HttpError(405, '/__fault supports GET, POST and DELETE');
    const fault = parseFaultRequest(request.jsonBody);
    const settings = faults.apply(fault);
    log(`faults now ${JSON.stringify(settings)}${fault.crash ? '; crashing on request' : ''}`);
    if (fault.crash) {
      // Exit once the 202 has left: the caller learns the crash was accepted, then the process
      // dies without cleanup, as a segfault or an OOM kill would.
      reply.raw.once('finish', () => setTimeout(() => exit(CRASH_EXIT_CODE), 50));
      return reply.code(202).header('Connection', 'close').send({ crashing: true, exit_code: CRASH_EXIT_CODE });
    }
    return settings;
  } });

  // Stage 4's proof that error reporting works: throw one ErrorReportingCheck, report it with the
  // caller's check id as the `check_id` tag, answer 202 (never a 5xx: no SLO counts it); 412 when
  // no DSN is configured, so the check fails saying why instead of waiting for nothing.
  app.route({ method: [...ALL_METHODS], url: '/__fault/report_exception', handler: async (request, reply) => {
    request.routeLabel = '/__fault/report_exception';
    loopbackOnly(request, 'fault control');
    if (request.method !== 'POST') throw new HttpError(405, '/__fault/report_exception supports POST only');
    const body = request.jsonBody as { check_id?: unknown } | undefined;
    const checkId = typeof body?.check_id === 'string' ? body.check_id : '';
    if (!/^[\w-]{1,64}$/.test(checkId)) throw new HttpError(400, 'check_id must be 1-64 letters, digits, - or _');
    if (!deps.errors) return reply.code(412).send({ reported: false, error: 'no SENTRY_DSN configured' });
    let eventId = '';
    try {
      throw new ErrorReportingCheck(`error reporting check ${checkId}`);
    } catch (error) {
      eventId = deps.errors.capture(error, { check_id: checkId, route: '/__fault/report_exception' });
    }
    return reply.code(202).send({ reported: true, type: 'ErrorReportingCheck', check_id: checkId, event_id: eventId,
                                  release: deps.errors.release ?? null });
  } });

  // An internal export that must never be reachable: it answers only under the insecure fault's
  // unauthenticated_route weakness, otherwise it is the same 404 as any unknown route.
  app.get('/api/admin/users', async (request, reply) => {
    if (faults.snapshot().weakness !== 'unauthenticated_route') {
      throw new HttpError(404, `no route for ${request.method} /api/admin/users`);
    }
    return reply.send(await deps.db.query('SELECT id, email FROM users ORDER BY id LIMIT 20'));
  });

  // ---------------------------------------------------------------------------------- API

  for (const route of API_ROUTES) {
    const url = route.template.replace('{id}', ':id(^\\d{1,18}$)');
    app.route({ method: route.method, url, handler: async (request, reply) => {
      request.routeLabel = route.template;
      const id = (request.params as { id?: string }).id;
      return serveApi(route, id === undefined ? undefined : Number(id), request, reply);
    } });
  }

  async function serveApi(route: ApiRoute, id: number | undefined, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const viaRouter = header(request, VIA_ROUTER_HEADER)?.trim().toLowerCase() === 'router';
    const userId = requestUserId(header(request, USER_ID_HEADER), route, id, request.jsonBody);
    if (await decideImpl(deps.flags, route, userId, viaRouter, header(request, FORCE_SERVE_HEADER)) === RAILS) {
      return forwardToRails(request, reply);
    }
    // capacity_limit: green's own code serves at most max_concurrent requests at once, the rest queue.
    const release = await capacity.acquire();
    try {
      return await serveOwn(route, id, userId, request, reply);
    } finally {
      release();
    }
  }

  async function serveOwn(route: ApiRoute, id: number | undefined, userId: number | undefined, request: FastifyRequest,
                          reply: FastifyReply): Promise<unknown> {
    const fault = faults.snapshot();
    if (fault.added_latency_ms > 0) await sleep(fault.added_latency_ms);
    // Injected errors short-circuit before the handler: an injected failure never writes.
    if (fault.error_fraction > 0 && random() < fault.error_fraction) {
      throw new InjectedFaultError(); // answered 500 (X-Fault-Injected) and reported by the error handler
    }
    let result: ApiResult;
    try {
      const problem = await schema.problem();
      if (problem) throw new HttpError(503, problem);
      // Write faults draw only for what writes; a read never consumes the random stream.
      const writeFault = route.method === 'POST' ? drawWriteFault(fault, random) : undefined;
      result = await HANDLERS[route.name](deps.db, id, request.jsonBody, writeFault);
    } catch (error) {
      if (SCHEMA_GONE.has(sqlState(error) ?? '')) {
        schema.invalidate();
        throw new HttpError(503, `schema changed under the app: ${(error as Error).message}`);
      }
      throw error;
    }
    if (result.createdOrderId !== undefined && deps.confirmOrder) {
      void deps.confirmOrder(result.createdOrderId).catch((error) => log(`order ${result.createdOrderId}: ${error}`));
    }
    const payload = fault.body_drift && result.status < 400 ? driftBody(result.payload) : result.payload;
    if (route.template === EXPERIMENT_ROUTE && deps.flags) {
      reply.header('X-Experiment-Order-Summary', await deps.flags.experimentVariant(userId));
    }
    return reply.code(result.status).send(payload);
  }

  async function forwardToRails(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    request.servedBy = RAILS;
    if (!deps.rails) throw new HttpError(502, 'green has no Rails URL to forward to (--rails-url)');
    const sent: Record<string, string> = {
      'content-type': header(request, 'content-type') ?? 'application/json', 'x-forwarded-by': COLOR,
      // Blue logs the same request under the same id.
      [REQUEST_ID_HEADER]: String(request.id),
    };
    const user = header(request, USER_ID_HEADER);
    if (user) sent[USER_ID_HEADER] = user;
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const answer = await deps.rails.forward(request.method, request.url, body, sent);
    reply.code(answer.status).headers(answer.headers);
    if (!answer.headers['content-type']) reply.header('content-type', 'application/json');
    return reply.send(answer.body);
  }

  return app;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function loopbackOnly(request: FastifyRequest, what: string): void {
  if (!LOOPBACK.has(request.socket.remoteAddress ?? '') || request.headers['x-forwarded-for'] !== undefined) {
    throw new HttpError(403, `${what} is only reachable directly from loopback`);
  }
}

export function parseJsonBody(raw: unknown): unknown {
  if (!Buffer.isBuffer(raw) || raw.length === 0) return {};
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `body is not valid JSON: ${(error as Error).message}`);
  }
}
