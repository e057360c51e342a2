/**
 * Fault control (`/__fault`): rehearsals inject 5xx errors, latency, a crash or bad writes
 * (`corrupt_writes_fraction`: that share of new orders stored with a wrong amount;
 * `drop_writes_fraction`: that share acknowledged with 201 but never committed) into green's own
 * code, and the smoke DAG's tests make its answers drift (`body_drift`: every string `status`
 * field upper-cased). Same body, fields, bounds and messages as blue's (sandbox/apps/rails): the
 * sandbox's fault tooling (sandbox/faults.py) drives both apps alike.
 */
import { HttpError } from './errors';

// Stays below HAProxy's `timeout server` (35 s) so injected latency never turns into 504s.
export const MAX_ADDED_LATENCY_MS = 30_000;
// EX_SOFTWARE: a crash is distinguishable from a SIGTERM/SIGKILL stop in logs and tests.
export const CRASH_EXIT_CODE = 70;

export interface FaultSettings {
  error_fraction: number;
  added_latency_ms: number;
  body_drift: boolean;
  corrupt_writes_fraction: number;
  drop_writes_fraction: number;
}

export interface FaultRequest {
  errorFraction?: number;
  addedLatencyMs?: number;
  bodyDrift?: boolean;
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

const FIELDS = new Set(['error_fraction', 'added_latency_ms', 'crash', 'body_drift', 'corrupt_writes_fraction', 'drop_writes_fraction']);

export function noFaults(): FaultSettings {
  return { error_fraction: 0, added_latency_ms: 0, body_drift: false, corrupt_writes_fraction: 0, drop_writes_fraction: 0 };
}

/** Validate a /__fault JSON body; HttpError(400) naming the bad field. */
export function parseFaultRequest(body: unknown): FaultRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'fault body must be a JSON object with error_fraction, added_latency_ms, body_drift, corrupt_writes_fraction, drop_writes_fraction and/or crash');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((name) => !FIELDS.has(name)).sort();
  if (unknown.length > 0) {
    throw new HttpError(400, `unknown fault field(s): ${unknown.join(', ')}`);
  }
  const errorFraction = numberField(fields, 'error_fraction', 0, 1);
  const addedLatencyMs = numberField(fields, 'added_latency_ms', 0, MAX_ADDED_LATENCY_MS);
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
  if (errorFraction === undefined && addedLatencyMs === undefined && !crash && bodyDrift === undefined
      && corruptWritesFraction === undefined && dropWritesFraction === undefined) {
    throw new HttpError(400, 'fault body sets nothing: give error_fraction, added_latency_ms, body_drift, corrupt_writes_fraction, drop_writes_fraction or crash');
  }
  return { errorFraction, addedLatencyMs, bodyDrift, corruptWritesFraction, dropWritesFraction, crash };
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
