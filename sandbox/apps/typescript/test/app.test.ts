import assert from 'node:assert/strict';
import { test } from 'node:test';

import { buildApp, type AppDeps } from '../src/app';
import { type Queryable, SchemaGate } from '../src/db';
import { DatabaseUnavailable } from '../src/errors';
import { Metrics } from '../src/metrics';
import { OPENAPI_DOCUMENT } from '../src/openapi';
import { API_ROUTES } from '../src/routes';
import { FakeDb, pgError, staticFlags } from './helpers';

const ORDER = { id: 42, user_id: 3, amount: '12.30', currency: 'USD', status: 'paid',
                created_at: new Date('2026-01-02T03:04:05.678Z'), updated_at: new Date('2026-01-02T03:04:05.678Z') };
const allGreen = staticFlags({ users: true, orders: true }, () => true);

function app(overrides: Partial<AppDeps> = {}, db = new FakeDb([['FROM orders WHERE id', [ORDER]], ['FROM users WHERE id', [{ id: 3, email: 'a@x' }]]])) {
  const rails = { calls: [] as unknown[], forward: async (...args: unknown[]) => {
    rails.calls.push(args);
    return { status: 200, body: Buffer.from('{"from":"rails"}'), headers: { 'content-type': 'application/json' } };
  } };
  const metrics = new Metrics();
  return { db, rails, metrics, app: buildApp({ db, metrics, flags: allGreen, rails, ...overrides }) };
}

test('green answers its own requests with its color and implementation', async () => {
  const { app: green } = app();
  const answer = await green.inject({ method: 'GET', url: '/api/orders/42' });
  assert.equal(answer.statusCode, 200);
  assert.equal(answer.headers['x-app-color'], 'green');
  assert.equal(answer.headers['x-served-by'], 'typescript');
  assert.deepEqual(answer.json(), { id: 42, user_id: 3, amount_cents: 1230, status: 'paid', created_at: '2026-01-02T03:04:05.678Z',
                                    updated_at: '2026-01-02T03:04:05.678Z', amount: '12.30', currency: 'USD' });
  const missing = await green.inject({ method: 'GET', url: '/api/users/1234567890123456789' });
  assert.equal(missing.statusCode, 404);
  assert.deepEqual(missing.json(), { error: 'no route for GET /api/users/1234567890123456789' });
  assert.equal((await green.inject({ method: 'DELETE', url: '/api/orders/1' })).statusCode, 405);
  assert.equal((await green.inject({ method: 'POST', url: '/healthz' })).statusCode, 405);
});

test('a flag-off feature is forwarded to Rails and counted apart from green\'s own requests', async () => {
  const { app: green, rails, metrics } = app({ flags: staticFlags({ users: true, orders: false }, () => true) });
  const answer = await green.inject({ method: 'POST', url: '/api/orders?x=1', payload: '{"user_id": 3, "amount_cents": 5}',
                                      headers: { 'content-type': 'application/json', 'x-user-id': '3' } });
  assert.equal(answer.statusCode, 200);
  assert.equal(answer.headers['x-served-by'], 'rails');
  assert.deepEqual(answer.json(), { from: 'rails' });
  const [method, path, body, headers] = rails.calls[0] as [string, string, Buffer, Record<string, string>];
  assert.equal(method, 'POST');
  assert.equal(path, '/api/orders?x=1');
  assert.equal(body.toString(), '{"user_id": 3, "amount_cents": 5}', 'the body goes to Rails byte for byte');
  assert.equal(headers['x-user-id'], '3');
  const exposition = await metrics.exposition();
  assert.match(exposition, /http_forwarded_requests_total\{method="POST",route="\/api\/orders",status_code="200"\} 1/);
  assert.match(exposition, /http_requests_total\{method="POST",route="\/api\/orders",status_code="201"\} 0/);
});

test('injected errors and drift hit green\'s own code only', async () => {
  const { app: green, db } = app({ random: () => 0.3 });
  await green.inject({ method: 'POST', url: '/__fault', payload: { error_fraction: 0.5 } });
  const failed = await green.inject({ method: 'POST', url: '/api/orders', payload: { user_id: 3, amount_cents: 5 } });
  assert.equal(failed.statusCode, 500);
  assert.equal(failed.headers['x-fault-injected'], '1');
  assert.ok(!db.statements.some((s) => s.sql.includes('INSERT')), 'an injected failure never writes');
  const forwarded = await green.inject({ method: 'GET', url: '/api/orders/42', headers: { 'x-cutover-serve': 'rails' } });
  assert.equal(forwarded.statusCode, 200, 'Rails answers are not green\'s to break');
  await green.inject({ method: 'POST', url: '/__fault', payload: { error_fraction: 0, body_drift: true } });
  assert.equal((await green.inject({ method: 'GET', url: '/api/orders/42' })).json().status, 'PAID');
  assert.deepEqual((await green.inject({ method: 'DELETE', url: '/__fault' })).json(),
                   { error_fraction: 0, added_latency_ms: 0, body_drift: false, max_concurrent: 0, weakness: 'none',
                     corrupt_writes_fraction: 0, drop_writes_fraction: 0 });
  const bad = await green.inject({ method: 'POST', url: '/__fault', payload: { error_fraction: 2 } });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().error, /error_fraction must be between 0 and 1/);
});

test('fault control and the flags report refuse requests that came through the router', async () => {
  const { app: green } = app();
  const routed = await green.inject({ method: 'GET', url: '/__fault', headers: { 'x-forwarded-for': '127.0.0.1' } });
  assert.equal(routed.statusCode, 403);
  assert.equal((await green.inject({ method: 'GET', url: '/__flags', headers: { 'x-forwarded-for': '127.0.0.1' } })).statusCode, 403);
  assert.equal((await green.inject({ method: 'GET', url: '/__flags' })).json().serves_rails, false);
});

test('a crash request answers 202 and then exits with 70', async () => {
  const exits: number[] = [];
  const { app: green } = app({ exit: (code) => exits.push(code) });
  const answer = await green.inject({ method: 'POST', url: '/__fault', payload: { crash: true } });
  assert.equal(answer.statusCode, 202);
  assert.deepEqual(answer.json(), { crashing: true, exit_code: 70 });
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.deepEqual(exits, [70]);
});

test('below the expanded schema green is alive but not ready, and serves nothing', async () => {
  const db = new FakeDb([['schema_migrations', [{ version: '20240101000000' }]]]);
  const { app: green } = app({}, db);
  assert.equal((await green.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  const ready = await green.inject({ method: 'GET', url: '/readyz' });
  assert.equal(ready.statusCode, 503);
  assert.deepEqual(ready.json(), { status: 'not ready', color: 'green', error: 'schema version 20240101000000 < required 20261126000001' });
  assert.equal((await green.inject({ method: 'GET', url: '/api/users/1' })).statusCode, 503);
});

test('database failures are 503, SQL conflicts their own codes', async () => {
  const down = new FakeDb([['SELECT 1', new DatabaseUnavailable('connect ECONNREFUSED')]]);
  assert.equal((await app({}, down).app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503);
  const conflict = new FakeDb([['INSERT INTO users', pgError('23505')]]);
  const taken = await app({}, conflict).app.inject({ method: 'POST', url: '/api/users', payload: { email: 'a@x' } });
  assert.equal(taken.statusCode, 409);
  const noUser = new FakeDb([['INSERT INTO orders', pgError('23503')]]);
  assert.equal((await app({}, noUser).app.inject({ method: 'POST', url: '/api/orders', payload: { user_id: 9, amount_cents: 1 } })).statusCode, 422);
  const gone = new FakeDb([['FROM orders WHERE id', pgError('42703', 'column "amount" does not exist')]]);
  const schemaGone = await app({}, gone).app.inject({ method: 'GET', url: '/api/orders/1' });
  assert.equal(schemaGone.statusCode, 503);
  assert.match(schemaGone.json().error, /schema changed under the app/);
  const bug = new FakeDb([['FROM orders WHERE id', new TypeError('boom')]]);
  const broken = await app({ log: () => undefined }, bug).app.inject({ method: 'GET', url: '/api/orders/1' });
  assert.deepEqual([broken.statusCode, broken.json()], [500, { error: 'internal error' }]);
  const invalid = await app().app.inject({ method: 'POST', url: '/api/users', payload: '{nope', headers: { 'content-type': 'application/json' } });
  assert.equal(invalid.statusCode, 400);
  assert.match(invalid.json().error, /body is not valid JSON/);
});

test('a created order queues its confirmation; the experiment tags the order list', async () => {
  const queued: number[] = [];
  const db = new FakeDb([['INSERT INTO orders', [{ id: 77 }]], ['FROM orders WHERE user_id', [ORDER]]]);
  const { app: green } = app({ confirmOrder: async (id) => queued.push(id) }, db);
  const created = await green.inject({ method: 'POST', url: '/api/orders', payload: { user_id: 3, amount: '1.50', line_items: [{ sku: 'A', quantity: 1, unit_price: '1.50' }] } });
  assert.deepEqual([created.statusCode, created.json()], [201, { id: 77 }]);
  assert.deepEqual(queued, [77]);
  const insert = db.statements.find((s) => s.sql.includes('INSERT INTO orders'))!;
  assert.deepEqual(insert.params, [3, '1.50', 'USD'], 'green writes the expanded columns');
  assert.deepEqual(db.statements.find((s) => s.sql.includes('INSERT INTO line_items'))!.params, [77, 'A', 1, '1.50']);
  const list = await green.inject({ method: 'GET', url: '/api/users/3/orders' });
  assert.equal(list.headers['x-experiment-order-summary'], 'treatment');
  assert.equal(list.json().orders[0].amount_cents, 1230);
});

test('the schema version is read at most once per cache window', async () => {
  const db = new FakeDb();
  let now = 0;
  const gate = new SchemaGate(db, '20261126000001', 1000, () => now);
  await Promise.all([gate.problem(), gate.problem(), gate.problem()]);
  now = 999;
  assert.equal(await gate.problem(), undefined);
  assert.equal(gate.queries, 1);
  now = 1000;
  await gate.problem();
  assert.equal(gate.queries, 2);
});

test('metrics: Node names, 0-valued error series from the start, scrapes not counted', async () => {
  const { app: green } = app();
  await green.inject({ method: 'GET', url: '/metrics' });
  const text = (await green.inject({ method: 'GET', url: '/metrics' })).body;
  assert.match(text, /http_requests_total\{method="GET",route="\/api\/orders\/\{id\}",status_code="500"\} 0/);
  assert.match(text, /http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/api\/users\/\{id\}",status_code="200"\} 0/);
  assert.match(text, /process_resident_memory_bytes/);
  assert.match(text, /nodejs_eventloop_lag_seconds/);
  assert.match(text, /ws_connections_active 0/);
  assert.doesNotMatch(text, /route="\/metrics"/);
});

test('the OpenAPI document describes exactly the API routes', async () => {
  const served = (await app().app.inject({ method: 'GET', url: '/openapi.json' })).json();
  assert.equal(served.openapi, '3.1.0');
  const operations = Object.entries(OPENAPI_DOCUMENT.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
  assert.deepEqual(operations.sort(), API_ROUTES.map((r) => `${r.method} ${r.template.replace('{id}', '{id}')}`).sort());
});

test('capacity_limit: green serves at most max_concurrent of its own requests at once, queues the rest', async () => {
  let running = 0;
  let most = 0;
  const slow = new FakeDb([['FROM orders WHERE id', [ORDER]]]);
  const query = slow.query.bind(slow);
  slow.query = async (sql: string, params?: unknown[]) => {
    running += 1;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 20));
    running -= 1;
    return query(sql, params);
  };
  const { app: green } = app({ schema: { problem: async () => null, invalidate: () => undefined } as unknown as SchemaGate }, slow);
  const limited = await green.inject({ method: 'POST', url: '/__fault', payload: { max_concurrent: 1 } });
  assert.equal(limited.json().max_concurrent, 1);
  const answers = await Promise.all(Array.from({ length: 4 }, () => green.inject({ method: 'GET', url: '/api/orders/42' })));
  assert.ok(answers.every((answer) => answer.statusCode === 200), 'queued, not refused');
  assert.equal(most, 1, 'never two of green\'s own requests in the database at once');
  await green.inject({ method: 'DELETE', url: '/__fault' });
  most = 0;
  await Promise.all(Array.from({ length: 4 }, () => green.inject({ method: 'GET', url: '/api/orders/42' })));
  assert.ok(most > 1, `cleared: requests run side by side again (most ${most})`);
});

test('a new user\'s email parameter has one explicit type (PostgreSQL refused "inconsistent types deduced for parameter $1")', async () => {
  const db = new FakeDb([['INSERT INTO users', [{ id: 9 }]]]);
  const created = await app({}, db).app.inject({ method: 'POST', url: '/api/users', payload: { email: ' A@x ' } });
  assert.equal(created.statusCode, 201);
  const insert = db.statements.find((s) => s.sql.includes('INSERT INTO users'))!;
  const uses = insert.sql.match(/\$1(::\w+)?/g) ?? [];
  assert.ok(uses.length === 2 && uses.every((use) => use === '$1::text'), `every $1 cast alike: ${uses}`);
});

test('insecure: green sends Rails\' security headers, and each weakness shows where a scanner looks', async () => {
  const db = new FakeDb([['FROM users ORDER BY id', [{ id: 1, email: 'a@x' }]]]);
  const { app: green } = app({}, db);
  const normal = await green.inject({ method: 'GET', url: '/nowhere' });
  assert.equal(normal.headers['x-content-type-options'], 'nosniff');
  assert.equal(normal.headers['x-frame-options'], 'SAMEORIGIN');
  assert.equal(normal.headers['x-powered-by'], undefined);
  assert.deepEqual(normal.json(), { error: 'no route for GET /nowhere' });
  assert.equal((await green.inject({ method: 'GET', url: '/api/admin/users' })).statusCode, 404, 'the export is hidden');

  const set = (weakness: string) => green.inject({ method: 'POST', url: '/__fault', payload: { weakness } });
  await set('missing_security_headers');
  assert.equal((await green.inject({ method: 'GET', url: '/api/orders/42' })).headers['x-content-type-options'], undefined);
  await set('x_powered_by');
  assert.equal((await green.inject({ method: 'GET', url: '/healthz' })).headers['x-powered-by'], 'Fastify');
  await set('stack_trace');
  const leaked = (await green.inject({ method: 'POST', url: '/api/users', payload: '{"email":' })).json();
  assert.match(leaked.error, /not valid JSON/);
  assert.ok(Array.isArray(leaked.trace) && leaked.trace.some((line: string) => /\bat\b/.test(line)), JSON.stringify(leaked));
  await set('unauthenticated_route');
  const open = await green.inject({ method: 'GET', url: '/api/admin/users' });
  assert.equal(open.statusCode, 200);
  assert.deepEqual(open.json(), [{ id: 1, email: 'a@x' }]);
  await green.inject({ method: 'DELETE', url: '/__fault' });
  assert.equal((await green.inject({ method: 'GET', url: '/api/admin/users' })).statusCode, 404);
});

/** A database double that records whether each transaction committed or rolled back. */
class TransactionsDb extends FakeDb {
  readonly outcomes: string[] = [];

  override async transaction<T>(work: (client: Queryable) => Promise<T>): Promise<T> {
    try {
      const result = await work(this);
      this.outcomes.push('commit');
      return result;
    } catch (error) {
      this.outcomes.push('rollback');
      throw error;
    }
  }
}

test('drop_writes acknowledges an order with 201 and its id but rolls the write back', async () => {
  const db = new TransactionsDb([['INSERT INTO orders', [{ id: 77 }]], ['FROM orders WHERE id', [ORDER]]]);
  const confirmed: number[] = [];
  const { app: green } = app({ random: () => 0.1, confirmOrder: async (id) => confirmed.push(id) }, db);
  await green.inject({ method: 'POST', url: '/__fault', payload: { drop_writes_fraction: 0.5 } });
  const answer = await green.inject({ method: 'POST', url: '/api/orders', payload: { user_id: 3, amount: '19.99' } });
  assert.equal(answer.statusCode, 201);
  assert.deepEqual(answer.json(), { id: 77 });
  assert.deepEqual(db.outcomes, ['rollback'], 'acknowledged, never committed');
  assert.deepEqual(confirmed, [], 'no confirmation job for an order that does not exist');
  assert.equal((await green.inject({ method: 'GET', url: '/api/orders/42' })).statusCode, 200, 'reads are untouched');
});

test('corrupt_writes stores the wrong amount in the new column and the client\'s in the legacy one, around the sync trigger', async () => {
  const db = new TransactionsDb([['INSERT INTO orders', [{ id: 78 }]]]);
  const { app: green } = app({ random: () => 0.4 }, db);
  await green.inject({ method: 'POST', url: '/__fault', payload: { corrupt_writes_fraction: 0.5 } });
  const answer = await green.inject({ method: 'POST', url: '/api/orders', payload: { user_id: 3, amount: '19.99' } });
  assert.equal(answer.statusCode, 201);
  assert.deepEqual(db.outcomes, ['commit']);
  const sql = db.statements.map((s) => s.sql);
  const disable = sql.findIndex((s) => s.includes('DISABLE TRIGGER orders_sync_shapes'));
  const insert = sql.findIndex((s) => s.includes('INSERT INTO orders'));
  const enable = sql.findIndex((s) => s.includes('ENABLE TRIGGER orders_sync_shapes'));
  assert.ok(disable >= 0 && disable < insert && insert < enable, 'the trigger is back on before the commit');
  assert.deepEqual(db.statements[insert].params, [3, 1999, '1999.00', 'USD']);
  // Above the fraction: a normal write through the trigger.
  const healthy = app({ random: () => 0.9 }, new TransactionsDb([['INSERT INTO orders', [{ id: 79 }]]]));
  await healthy.app.inject({ method: 'POST', url: '/__fault', payload: { corrupt_writes_fraction: 0.5 } });
  await healthy.app.inject({ method: 'POST', url: '/api/orders', payload: { user_id: 3, amount: '19.99' } });
  assert.ok(!healthy.db.statements.some((s) => s.sql.includes('TRIGGER')));
  assert.deepEqual(healthy.db.statements.find((s) => s.sql.includes('INSERT INTO orders'))?.params, [3, '19.99', 'USD']);
});

function recordingReporter(release: string | undefined = 'green@abc') {
  const captured: { error: unknown; tags: Record<string, string> }[] = [];
  return { captured, reporter: { release, tracesSampleRate: 0, capture: (error: unknown, tags: Record<string, string>) => {
    captured.push({ error, tags });
    return `event${captured.length}`;
  }, flush: async () => true } };
}

test('the error fault raises a real InjectedFaultError that error tracking gets, and unhandled 500s are reported', async () => {
  const { captured, reporter } = recordingReporter();
  const { app: green } = app({ random: () => 0.3, errors: reporter },
                             new FakeDb([['FROM orders WHERE id', new TypeError('cannot read amount of undefined')]]));
  await green.inject({ method: 'POST', url: '/__fault', payload: { error_fraction: 0.5 } });
  const failed = await green.inject({ method: 'GET', url: '/api/users/3' });
  assert.equal(failed.statusCode, 500);
  assert.deepEqual(failed.json(), { error: 'injected fault' }, 'the answer is what it was before the raise');
  assert.equal(failed.headers['x-fault-injected'], '1');
  assert.equal((captured[0].error as Error).name, 'InjectedFaultError');
  assert.deepEqual(captured[0].tags, { route: '/api/users/{id}' });
  await green.inject({ method: 'DELETE', url: '/__fault' });
  const bug = await green.inject({ method: 'GET', url: '/api/orders/42' });
  assert.equal(bug.statusCode, 500);
  assert.equal((captured[1].error as Error).name, 'TypeError');
  const notFound = await green.inject({ method: 'GET', url: '/api/users/1234567890123456789' });
  assert.equal(notFound.statusCode, 404);
  assert.equal(captured.length, 2, 'a 4xx is the client\'s, not an exception to track');
});

test('POST /__fault/report_exception reports one ErrorReportingCheck, answers 202, and 412 without a DSN', async () => {
  const { captured, reporter } = recordingReporter();
  const { app: green } = app({ errors: reporter });
  const answer = await green.inject({ method: 'POST', url: '/__fault/report_exception', payload: { check_id: 'stage4-abc' } });
  assert.equal(answer.statusCode, 202);
  assert.deepEqual(answer.json(), { reported: true, type: 'ErrorReportingCheck', check_id: 'stage4-abc', event_id: 'event1',
                                    release: 'green@abc' });
  assert.equal((captured[0].error as Error).name, 'ErrorReportingCheck');
  assert.deepEqual(captured[0].tags, { check_id: 'stage4-abc', route: '/__fault/report_exception' });
  const bad = await green.inject({ method: 'POST', url: '/__fault/report_exception', payload: { check_id: 'a b' } });
  assert.equal(bad.statusCode, 400);
  const remote = await green.inject({ method: 'POST', url: '/__fault/report_exception', payload: { check_id: 'x' },
                                      remoteAddress: '10.0.0.5' });
  assert.equal(remote.statusCode, 403);
  const { app: noDsn } = app();
  const unset = await noDsn.inject({ method: 'POST', url: '/__fault/report_exception', payload: { check_id: 'x' } });
  assert.equal(unset.statusCode, 412);
  assert.equal(captured.length, 1);
});

test('SENTRY_TRACES_SAMPLE_RATE is a share in [0, 1], unset meaning no tracing', async () => {
  const { tracesSampleRate } = await import('../src/sentry');
  assert.equal(tracesSampleRate(undefined), 0);
  assert.equal(tracesSampleRate('0.25'), 0.25);
  assert.throws(() => tracesSampleRate('2'), /SENTRY_TRACES_SAMPLE_RATE=2: must be a number in \[0, 1\]/);
  assert.throws(() => tracesSampleRate('lots'), /must be a number/);
});
