/**
 * Fault control (`/__fault`): rehearsals inject 5xx errors, latency, a crash or bad writes
 * (`corrupt_writes_fraction`: that share of new orders stored with a wrong amount;
 * `drop_writes_fraction`: that share acknowledged with 201 but never committed) into green's own
 * code, and the smoke DAG's tests make its answers drift (`body_drift`: every string `status`
 * field upper-cased). `max_concurrent` (the capacity_limit fault, stage 6) serves at most that
 * many of green's own API requests at once and queues the rest (0 = no limit). Same body,
 * fields, bounds and messages as blue's (sandbox/apps/rails/lib/cutover/fault_state.rb), except
 * the two write faults, which only green has (a rewrite's bug, not the old app's): the sandbox's
 * fault tooling (sandbox/faults.py) drives both apps alike.
 */
import { HttpError } from './errors';

// Stays below HAProxy's `timeout server` (35 s) so injected latency never turns into 504s.
export const MAX_ADDED_LATENCY_MS = 30_000;
// EX_SOFTWARE: a crash is distinguishable from a SIGTERM/SIGKILL stop in logs and tests.
export const CRASH_EXIT_CODE = 70;
/**
 * The insecure fault (stage 7's rehearsals): one weakness a careless build could ship.
 *   stack_trace               error answers carry the stack (ZAP 90022, application error disclosure)
 *   missing_security_headers  SECURITY_HEADERS are not sent (ZAP 10020, 10021, ...)
 *   x_powered_by              the framework names itself in X-Powered-By (ZAP 10037)
 *   unauthenticated_route     GET /api/admin/users lists users to anyone
 */
export const WEAKNESSES = ['stack_trace', 'missing_security_headers', 'x_powered_by', 'unauthenticated_route'] as const;
export type Weakness = typeof WEAKNESSES[number] | 'none';
/** What Rails (blue) sends by default on every answer; green sends the same unless the fault removes them. */
export const SECURITY_HEADERS: Record<string, string> = {
  'X-Frame-Options': 'SAMEORIGIN',
  'X-Content-Type-Options': 'nosniff',
  'X-XSS-Protection': '0',
  'X-Download-Options': 'noopen',
  'X-Permitted-Cross-Domain-Policies': 'none',
  'Referrer-Policy': 'strict-origin-when-cross-origin',
};
export const POWERED_BY = 'Fastify';

/** Headers to add to an answer under `weakness` (the security headers unless they are the weakness). */
export function answerHeaders(weakness: Weakness): Record<string, string> {
  if (weakness === 'missing_security_headers') return {};
  if (weakness === 'x_powered_by') return { ...SECURITY_HEADERS, 'X-Powered-By': POWERED_BY };
  return { ...SECURITY_HEADERS };
}

/** An error's JSON body; the stack_trace weakness adds where it was raised. */
export function errorPayload(weakness: Weakness, message: string, stack: string | undefined): Record<string, unknown> {
  if (weakness !== 'stack_trace') return { error: message };
  return { error: message, trace: (stack ?? new Error(message).stack ?? '').split('\n').slice(0, 12) };
}

// Upper bound of the capacity_limit fault: a limit above this is no limit on these machines.
export const MAX_CONCURRENT_LIMIT = 10_000;

export interface FaultSettings {
  error_fraction: number;
  added_latency_ms: number;
  body_drift: boolean;
  /** capacity_limit: at most this many own API requests at once (0 = unlimited). */
  max_concurrent: number;
  /** insecure: the weakness green shows ('none' = none). */
  weakness: Weakness;
  /** corrupt_writes: the share of new orders stored with a wrong amount. */
  corrupt_writes_fraction: number;
  /** drop_writes: the share of new orders acknowledged with 201 but never committed. */
  drop_writes_fraction: number;
}

export interface FaultRequest {
  errorFraction?: number;
  addedLatencyMs?: number;
  bodyDrift?: boolean;
  maxConcurrent?: number;
  weakness?: Weakness;
  corruptWritesFraction?: number;
  dropWritesFraction?: number;
  crash: boolean;
}

/** What one order creation does wrong, drawn per request from the fractions (see api.ts createOrder). */
export interface WriteFault {
  corrupt: boolean;
  drop: boolean;
}

export const NO_WRITE_FAULT: WriteFault = { corrupt: false, drop: false };

/** Draw one request's write fault: each kind independently, with its fraction's probability. */
export function drawWriteFault(settings: FaultSettings, random: () => number): WriteFault {
  return {
    corrupt: settings.corrupt_writes_fraction > 0 && random() < settings.corrupt_writes_fraction,
    drop: settings.drop_writes_fraction > 0 && random() < settings.drop_writes_fraction,
  };
}

const FIELDS = new Set([
  'error_fraction', 'added_latency_ms', 'crash', 'body_drift', 'max_concurrent', 'weakness',
  'corrupt_writes_fraction', 'drop_writes_fraction',
]);

export function noFaults(): FaultSettings {
  return {
    error_fraction: 0, added_latency_ms: 0, body_drift: false, max_concurrent: 0, weakness: 'none',
    corrupt_writes_fraction: 0, drop_writes_fraction: 0,
  };
}

/** Validate a /__fault JSON body; HttpError(400) naming the bad field. */
export function parseFaultRequest(body: unknown): FaultRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'fault body must be a JSON object with error_fraction, added_latency_ms, body_drift, max_concurrent, weakness, corrupt_writes_fraction, drop_writes_fraction and/or crash');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((name) => !FIELDS.has(name)).sort();
  if (unknown.length > 0) {
    throw new HttpError(400, `unknown fault field(s): ${unknown.join(', ')}`);
  }
  const errorFraction = numberField(fields, 'error_fraction', 0, 1);
  const addedLatencyMs = numberField(fields, 'added_latency_ms', 0, MAX_ADDED_LATENCY_MS);
  const maxConcurrent = numberField(fields, 'max_concurrent', 0, MAX_CONCURRENT_LIMIT);
  if (maxConcurrent !== undefined && !Number.isInteger(maxConcurrent)) {
    throw new HttpError(400, `max_concurrent must be a whole number, got ${maxConcurrent}`);
  }
  const corruptWritesFraction = numberField(fields, 'corrupt_writes_fraction', 0, 1);
  const dropWritesFraction = numberField(fields, 'drop_writes_fraction', 0, 1);
  const crash = fields.crash ?? false;
  if (typeof crash !== 'boolean') {
    throw new HttpError(400, `crash must be true or false, got ${JSON.stringify(crash)}`);
  }
  let bodyDrift: boolean | undefined;
  if ('body_drift' in fields) {
    if (typeof fields.body_drift !== 'boolean') {
      throw new HttpError(400, `body_drift must be true or false, got ${JSON.stringify(fields.body_drift)}`);
    }
    bodyDrift = fields.body_drift;
  }
  let weakness: Weakness | undefined;
  if ('weakness' in fields) {
    const allowed: readonly string[] = [...WEAKNESSES, 'none'];
    if (typeof fields.weakness !== 'string' || !allowed.includes(fields.weakness)) {
      throw new HttpError(400, `weakness must be one of ${allowed.join(', ')}, got ${JSON.stringify(fields.weakness)}`);
    }
    weakness = fields.weakness as Weakness;
  }
  if (errorFraction === undefined && addedLatencyMs === undefined && !crash && bodyDrift === undefined
      && maxConcurrent === undefined && weakness === undefined
      && corruptWritesFraction === undefined && dropWritesFraction === undefined) {
    throw new HttpError(400, 'fault body sets nothing: give error_fraction, added_latency_ms, body_drift, max_concurrent, weakness, corrupt_writes_fraction, drop_writes_fraction or crash');
  }
  return { errorFraction, addedLatencyMs, bodyDrift, maxConcurrent, weakness, corruptWritesFraction, dropWritesFraction, crash };
}

function numberField(body: Record<string, unknown>, name: string, low: number, high: number): number | undefined {
  if (!(name in body)) {
    return undefined;
  }
  const value = body[name];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new HttpError(400, `${name} must be a number, got ${JSON.stringify(value)}`);
  }
  if (value < low || value > high) {
    throw new HttpError(400, `${name} must be between ${low} and ${high}, got ${value}`);
  }
  return value;
}

/** The current faults; requests read a copy, /__fault replaces fields (absolute values). */
export class FaultState {
  private settings: FaultSettings = noFaults();

  snapshot(): FaultSettings {
    return { ...this.settings };
  }

  apply(request: FaultRequest): FaultSettings {
    if (request.errorFraction !== undefined) this.settings.error_fraction = request.errorFraction;
    if (request.addedLatencyMs !== undefined) this.settings.added_latency_ms = request.addedLatencyMs;
    if (request.bodyDrift !== undefined) this.settings.body_drift = request.bodyDrift;
    if (request.maxConcurrent !== undefined) this.settings.max_concurrent = request.maxConcurrent;
    if (request.weakness !== undefined) this.settings.weakness = request.weakness;
    if (request.corruptWritesFraction !== undefined) this.settings.corrupt_writes_fraction = request.corruptWritesFraction;
    if (request.dropWritesFraction !== undefined) this.settings.drop_writes_fraction = request.dropWritesFraction;
    return this.snapshot();
  }

  clear(): FaultSettings {
    this.settings = noFaults();
    return this.snapshot();
  }
}

/**
 * The capacity_limit fault: at most `limit()` holders at once, the others wait in arrival order
 * (a queue, not a refusal: the app gets slow, it does not fail). The limit is read on every
 * acquire and release, so lowering or clearing it takes effect for the requests still queued.
 */
export class ConcurrencyLimiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: () => number) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves with the release function once a slot is free. */
  async acquire(): Promise<() => void> {
    if (!this.full()) {
      this.active += 1;
    } else {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active -= 1;
      this.admit();
    };
  }

  private full(): boolean {
    const limit = this.limit();
    return limit > 0 && this.active >= limit;
  }

  private admit(): void {
    while (this.waiting.length > 0 && !this.full()) {
      this.active += 1;
      this.waiting.shift()!();
    }
  }
}

/**
 * The body_drift fault: every string `status` field upper-cased at any depth (an order, or each
 * order of a list). Nothing else changes, so a parity diff names exactly this field.
 */
export function driftBody(payload: unknown): unknown {
  if (Array.isArray(payload)) {
    return payload.map(driftBody);
  }
  if (typeof payload === 'object' && payload !== null && !(payload instanceof Date)) {
    return Object.fromEntries(Object.entries(payload).map(([key, value]) =>
      [key, key === 'status' && typeof value === 'string' ? value.toUpperCase() : driftBody(value)]));
  }
  return payload;
}
