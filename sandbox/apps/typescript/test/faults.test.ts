import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HttpError } from '../src/errors';
import { FaultState, NO_WRITE_FAULT, drawWriteFault, driftBody, noFaults, parseFaultRequest } from '../src/faults';

function refused(body: unknown, message: RegExp): void {
  assert.throws(() => parseFaultRequest(body), (error: unknown) => error instanceof HttpError && error.status === 400 && message.test(error.message));
}

test('a fault body sets only the fields it names', () => {
  const none = { errorFraction: undefined, addedLatencyMs: undefined, bodyDrift: undefined, corruptWritesFraction: undefined,
                 dropWritesFraction: undefined, crash: false };
  assert.deepEqual(parseFaultRequest({ error_fraction: 0.5 }), { ...none, errorFraction: 0.5 });
  assert.deepEqual(parseFaultRequest({ added_latency_ms: 250, body_drift: true }), { ...none, addedLatencyMs: 250, bodyDrift: true });
  assert.deepEqual(parseFaultRequest({ corrupt_writes_fraction: 0.5, drop_writes_fraction: 1 }),
                   { ...none, corruptWritesFraction: 0.5, dropWritesFraction: 1 });
  assert.equal(parseFaultRequest({ crash: true }).crash, true);
});

test('bad fault bodies are refused naming the field', () => {
  refused([], /must be a JSON object/);
  refused('x', /must be a JSON object/);
  refused({ error_fraction: 0.1, color: 'green' }, /unknown fault field\(s\): color/);
  refused({ error_fraction: 1.5 }, /error_fraction must be between 0 and 1, got 1.5/);
  refused({ error_fraction: true }, /error_fraction must be a number, got true/);
  refused({ added_latency_ms: 30_001 }, /added_latency_ms must be between 0 and 30000/);
  refused({ added_latency_ms: '10' }, /added_latency_ms must be a number/);
  refused({ crash: 'yes' }, /crash must be true or false/);
  refused({ body_drift: 1 }, /body_drift must be true or false/);
  refused({ corrupt_writes_fraction: 1.2 }, /corrupt_writes_fraction must be between 0 and 1, got 1.2/);
  refused({ drop_writes_fraction: '0.5' }, /drop_writes_fraction must be a number/);
  refused({}, /sets nothing/);
  refused({ crash: false }, /sets nothing/);
});

test('fault state is absolute per field and clears to no faults', () => {
  const state = new FaultState();
  state.apply(parseFaultRequest({ error_fraction: 0.2, added_latency_ms: 100 }));
  assert.deepEqual(state.apply(parseFaultRequest({ error_fraction: 0 })), { ...noFaults(), added_latency_ms: 100 });
  const copy = state.snapshot();
  copy.added_latency_ms = 5;
  assert.equal(state.snapshot().added_latency_ms, 100, 'a snapshot is a copy');
  state.apply(parseFaultRequest({ drop_writes_fraction: 0.3 }));
  assert.equal(state.snapshot().drop_writes_fraction, 0.3);
  assert.deepEqual(state.clear(), { error_fraction: 0, added_latency_ms: 0, body_drift: false, corrupt_writes_fraction: 0, drop_writes_fraction: 0 });
});

test('body drift upper-cases every string status field and nothing else', () => {
  const when = new Date('2026-01-01T00:00:00Z');
  const payload = { user_id: 3, status: 'x', orders: [{ id: 1, status: 'paid', note: 'paid', created_at: when }, { id: 2, status: 7 }] };
  assert.deepEqual(driftBody(payload), { user_id: 3, status: 'X', orders: [{ id: 1, status: 'PAID', note: 'paid', created_at: when }, { id: 2, status: 7 }] });
});

test('write faults are drawn per request, each kind with its own fraction', () => {
  assert.deepEqual(drawWriteFault(noFaults(), () => 0), NO_WRITE_FAULT, 'no fraction, no fault, whatever the draw');
  const settings = { ...noFaults(), corrupt_writes_fraction: 0.5, drop_writes_fraction: 0.2 };
  assert.deepEqual(drawWriteFault(settings, () => 0.3), { corrupt: true, drop: false });
  assert.deepEqual(drawWriteFault(settings, () => 0.1), { corrupt: true, drop: true });
  assert.deepEqual(drawWriteFault(settings, () => 0.7), { corrupt: false, drop: false });
});
