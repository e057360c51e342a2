import assert from 'node:assert/strict';
import { test } from 'node:test';

import { buildApp } from '../src/app';
import { createLogger, releaseFrom, requestIdFrom } from '../src/logging';
import { Metrics } from '../src/metrics';
import { FakeDb, staticFlags } from './helpers';

// The names Rails writes too (sandbox/apps/rails/test/unit/request_log_test.rb, docs/observability.md).
const REQUEST_FIELDS = ['level', 'time', 'color', 'release', 'kind', 'request_id', 'method', 'path', 'route', 'status',
                        'duration_ms', 'served_by'];
const ORDER = { id: 42, user_id: 3, amount: '12.30', currency: 'USD', status: 'paid',
                created_at: new Date('2026-01-02T03:04:05.678Z'), updated_at: new Date('2026-01-02T03:04:05.678Z') };

function loggedApp(flagsOn = true) {
  const written: string[] = [];
  const logger = createLogger({ color: 'green', release: 'typescript@1a2b3c4' }, { write: (chunk: string) => { written.push(chunk); } });
  const forwarded: Record<string, string>[] = [];
  const rails = { forward: async (_method: string, _path: string, _body: Buffer, headers: Record<string, string>) => {
    forwarded.push(headers);
    return { status: 201, body: Buffer.from('{"from":"rails"}'), headers: { 'content-type': 'application/json' } };
  } };
  const app = buildApp({ db: new FakeDb([['FROM orders WHERE id', [ORDER]]]), metrics: new Metrics(), logger, rails,
                         flags: staticFlags({ users: flagsOn, orders: flagsOn }, () => flagsOn), log: () => {} });
  const lines = () => written.join('').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line));
  return { app, lines, forwarded, written };
}

test('one JSON line per request, with the shared field names, and the caller\'s request id echoed', async () => {
  const { app, lines, written } = loggedApp();
  const answer = await app.inject({ method: 'GET', url: '/api/orders/42?expand=1', headers: { 'x-request-id': 'router-7f3a-1' } });
  assert.equal(answer.statusCode, 200);
  assert.equal(answer.headers['x-request-id'], 'router-7f3a-1');
  assert.equal(written.length, 1, 'exactly one write, one line');
  const [line] = lines();
  assert.deepEqual(Object.keys(line), REQUEST_FIELDS);
  assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(typeof line.duration_ms, 'number');
  assert.deepEqual({ ...line, time: undefined, duration_ms: undefined }, {
    level: 'info', time: undefined, color: 'green', release: 'typescript@1a2b3c4', kind: 'request', request_id: 'router-7f3a-1',
    method: 'GET', path: '/api/orders/42', route: '/api/orders/{id}', status: 200, duration_ms: undefined, served_by: 'typescript',
  });
});

test('without a usable id green makes one; unsafe characters are removed as Rails does', async () => {
  const { app, lines } = loggedApp();
  const fresh = await app.inject({ method: 'GET', url: '/api/orders/42' });
  assert.match(String(fresh.headers['x-request-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  const cleaned = await app.inject({ method: 'GET', url: '/api/orders/42', headers: { 'x-request-id': 'a b\n"c"@d' } });
  assert.equal(cleaned.headers['x-request-id'], 'abc@d');
  assert.deepEqual(lines().map((line) => line.request_id), [fresh.headers['x-request-id'], 'abc@d']);
  assert.equal(requestIdFrom('"\n ', () => 'made'), 'made');
  assert.equal(requestIdFrom('x'.repeat(300)).length, 255);
  assert.equal(requestIdFrom(['first', 'second']), 'first');
});

test('a forwarded request carries its id to blue and is logged as served by rails', async () => {
  const { app, lines, forwarded } = loggedApp(false);
  const answer = await app.inject({ method: 'POST', url: '/api/orders', payload: { user_id: 3, amount_cents: 100 },
                                    headers: { 'x-request-id': 'fwd-1' } });
  assert.equal(answer.statusCode, 201);
  assert.equal(forwarded[0]['x-request-id'], 'fwd-1');
  assert.deepEqual(lines().map((line) => [line.request_id, line.served_by, line.status]), [['fwd-1', 'rails', 201]]);
});

test('5xx answers are error lines; probes and scrapes are not logged', async () => {
  const { app, lines } = loggedApp();
  await app.inject({ method: 'POST', url: '/__fault', payload: { error_fraction: 1 }, remoteAddress: '127.0.0.1' });
  await app.inject({ method: 'GET', url: '/readyz' });
  await app.inject({ method: 'GET', url: '/healthz' });
  await app.inject({ method: 'GET', url: '/metrics' });
  const failed = await app.inject({ method: 'GET', url: '/api/orders/42' });
  assert.equal(failed.statusCode, 500);
  assert.deepEqual(lines().map((line) => [line.route, line.status, line.level]),
                   [['/__fault', 200, 'info'], ['/api/orders/{id}', 500, 'error']]);
});

test('other messages are JSON lines with the same identity; the release names itself or says unknown', () => {
  const written: string[] = [];
  createLogger({ color: 'green', release: 'r1' }, { write: (chunk: string) => { written.push(chunk); } }).info('listening');
  const line = JSON.parse(written[0]);
  assert.deepEqual({ ...line, time: undefined }, { level: 'info', time: undefined, color: 'green', release: 'r1', msg: 'listening' });
  assert.equal(releaseFrom({ APP_RELEASE: ' typescript@9f8e7d6 ' }), 'typescript@9f8e7d6');
  assert.equal(releaseFrom({}), 'typescript@unknown');
});

test('an unhandled error is an error line with the request id, beside the 500 request line', async () => {
  const written: string[] = [];
  const logger = createLogger({ color: 'green', release: 'r' }, { write: (chunk: string) => { written.push(chunk); } });
  const app = buildApp({ db: new FakeDb([['FROM orders WHERE id', new TypeError('boom')]]), metrics: new Metrics(), logger,
                         flags: staticFlags({ users: true, orders: true }, () => true) });
  const answer = await app.inject({ method: 'GET', url: '/api/orders/1', headers: { 'x-request-id': 'bug-1' } });
  assert.equal(answer.statusCode, 500);
  const [message, request] = written.map((chunk) => JSON.parse(chunk));
  assert.equal(message.level, 'error');
  assert.equal(message.request_id, 'bug-1');
  assert.match(message.msg, /^unhandled error on GET \/api\/orders\/\{id\}: TypeError: boom/);
  assert.deepEqual([request.kind, request.request_id, request.status, request.level], ['request', 'bug-1', 500, 'error']);
});
