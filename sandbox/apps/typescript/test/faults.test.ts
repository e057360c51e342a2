import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HttpError } from '../src/errors';
import {
  ConcurrencyLimiter, FaultState, NO_WRITE_FAULT, SECURITY_HEADERS, answerHeaders, drawWriteFault, driftBody,
  errorPayload, noFaults, parseFaultRequest,
} from '../src/faults';

function refused(body: unknown, message: RegExp): void {
  assert.throws(() => parseFaultRequest(body), (error: unknown) => error instanceof HttpError && error.status === 400 && message.test(error.message));
}

test('a fault body sets only the fields it names', () => {
  const none = { errorFraction: undefined, addedLatencyMs: undefined, bodyDrift: undefined, maxConcurrent: undefined,
                 weakness: undefined, corruptWritesFraction: undefined, dropWritesFraction: undefined, crash: false };
  assert.deepEqual(parseFaultRequest({ error_fraction: 0.5 }), { ...none, errorFraction: 0.5 });
  assert.deepEqual(parseFaultRequest({ added_latency_ms: 250, body_drift: true }), { ...none, addedLatencyMs: 250, bodyDrift: true });
  assert.deepEqual(parseFaultRequest({ corrupt_writes_fraction: 0.5, drop_writes_fraction: 1 }),
                   { ...none, corruptWritesFraction: 0.5, dropWritesFraction: 1 });
  assert.equal(parseFaultRequest({ max_concurrent: 2 }).maxConcurrent, 2);
  assert.equal(parseFaultRequest({ max_concurrent: 0 }).maxConcurrent, 0);
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
  refused({ max_concurrent: 1.5 }, /max_concurrent must be a whole number, got 1.5/);
  refused({ max_concurrent: -1 }, /max_concurrent must be between 0 and 10000, got -1/);
  refused({ max_concurrent: '2' }, /max_concurrent must be a number/);
  refused({ weakness: 'sql_injection' }, /weakness must be one of stack_trace, missing_security_headers, x_powered_by, unauthenticated_route, none, got "sql_injection"/);
  refused({ weakness: 1 }, /weakness must be one of/);
});

test('fault state is absolute per field and clears to no faults', () => {
  const state = new FaultState();
  state.apply(parseFaultRequest({ error_fraction: 0.2, added_latency_ms: 100 }));
  assert.deepEqual(state.apply(parseFaultRequest({ error_fraction: 0 })), { ...noFaults(), added_latency_ms: 100 });
  const copy = state.snapshot();
  copy.added_latency_ms = 5;
  assert.equal(state.snapshot().added_latency_ms, 100, 'a snapshot is a copy');
  state.apply(parseFaultRequest({ max_concurrent: 3 }));
  assert.equal(state.snapshot().max_concurrent, 3);
  state.apply(parseFaultRequest({ drop_writes_fraction: 0.3 }));
  assert.equal(state.snapshot().drop_writes_fraction, 0.3);
  assert.deepEqual(state.clear(), { error_fraction: 0, added_latency_ms: 0, body_drift: false, max_concurrent: 0, weakness: 'none',
                                    corrupt_writes_fraction: 0, drop_writes_fraction: 0 });
});

test('body drift upper-cases every string status field and nothing else', () => {
  const when = new Date('2026-01-01T00:00:00Z');
  const payload = { user_id: 3, status: 'x', orders: [{ id: 1, status: 'paid', note: 'paid', created_at: when }, { id: 2, status: 7 }] };
  assert.deepEqual(driftBody(payload), { user_id: 3, status: 'X', orders: [{ id: 1, status: 'PAID', note: 'paid', created_at: when }, { id: 2, status: 7 }] });
});

test('the capacity limiter admits at most the limit at once, queues the rest in order', async () => {
  let limit = 2;
  const limiter = new ConcurrencyLimiter(() => limit);
  const order: number[] = [];
  const first = await limiter.acquire();
  const second = await limiter.acquire();
  const waiting = [3, 4].map((n) => limiter.acquire().then((release) => { order.push(n); return release; }));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(limiter.inFlight, 2);
  assert.equal(limiter.queued, 2);
  assert.deepEqual(order, [], 'nobody past the limit yet');
  first();
  first(); // a second release of the same slot frees nothing more
  const third = await waiting[0];
  assert.deepEqual(order, [3]);
  assert.equal(limiter.inFlight, 2);
  limit = 0; // cleared: everyone queued goes at once
  second();
  const fourth = await waiting[1];
  assert.deepEqual(order, [3, 4]);
  third();
  fourth();
  assert.equal(limiter.inFlight, 0);
});

test('without a limit the limiter never queues', async () => {
  const limiter = new ConcurrencyLimiter(() => 0);
  const releases = await Promise.all(Array.from({ length: 50 }, () => limiter.acquire()));
  assert.equal(limiter.inFlight, 50);
  assert.equal(limiter.queued, 0);
  releases.forEach((release) => release());
  assert.equal(limiter.inFlight, 0);
});

test('the insecure fault\'s weaknesses: headers and error bodies', () => {
  assert.equal(parseFaultRequest({ weakness: 'x_powered_by' }).weakness, 'x_powered_by');
  assert.equal(parseFaultRequest({ weakness: 'none' }).weakness, 'none');
  assert.deepEqual(answerHeaders('none'), SECURITY_HEADERS);
  assert.equal(answerHeaders('none')['X-Content-Type-Options'], 'nosniff');
  assert.deepEqual(answerHeaders('missing_security_headers'), {});
  assert.equal(answerHeaders('x_powered_by')['X-Powered-By'], 'Fastify');
  assert.deepEqual(errorPayload('none', 'no route', 'Error: x\n    at a (/app/x.js:1:1)'), { error: 'no route' });
  const leaked = errorPayload('stack_trace', 'no route', 'Error: x\n    at a (/app/x.js:1:1)');
  assert.deepEqual(leaked.trace, ['Error: x', '    at a (/app/x.js:1:1)']);
  const state = new FaultState();
  state.apply(parseFaultRequest({ weakness: 'stack_trace' }));
  assert.equal(state.snapshot().weakness, 'stack_trace');
  assert.equal(state.clear().weakness, 'none');
});

test('write faults are drawn per request, each kind with its own fraction', () => {
  assert.deepEqual(drawWriteFault(noFaults(), () => 0), NO_WRITE_FAULT, 'no fraction, no fault, whatever the draw');
  const settings = { ...noFaults(), corrupt_writes_fraction: 0.5, drop_writes_fraction: 0.2 };
  assert.deepEqual(drawWriteFault(settings, () => 0.3), { corrupt: true, drop: false });
  assert.deepEqual(drawWriteFault(settings, () => 0.1), { corrupt: true, drop: true });
  assert.deepEqual(drawWriteFault(settings, () => 0.7), { corrupt: false, drop: false });
});
