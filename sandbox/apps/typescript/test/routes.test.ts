import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HttpError } from '../src/errors';
import { staticFlags } from './helpers';
import { API_ROUTES, RAILS, TYPESCRIPT, decideImpl, flagsReport, matchApiRoute, requestUserId } from '../src/routes';

const route = (template: string) => API_ROUTES.find((r) => r.template === template)!;

test('paths match their route, with 405 for a known path and 404 otherwise', () => {
  assert.equal(matchApiRoute('GET', '/api/users/42').route?.template, '/api/users/{id}');
  assert.equal(matchApiRoute('GET', '/api/users/42').id, 42);
  assert.equal(matchApiRoute('GET', '/api/users/42/orders').route?.template, '/api/users/{id}/orders');
  assert.equal(matchApiRoute('POST', '/api/orders').route?.name, 'createOrder');
  assert.deepEqual(matchApiRoute('DELETE', '/api/orders/1'), { pathKnown: true });
  assert.deepEqual(matchApiRoute('GET', '/api/users/1234567890123456789'), { pathKnown: false });
  assert.deepEqual(matchApiRoute('GET', '/api/users/abc'), { pathKnown: false });
});

test('the user of a request: header, else path, else body', () => {
  assert.equal(requestUserId(' 7 ', route('/api/users/{id}'), 42, {}), 7);
  assert.equal(requestUserId('x', route('/api/users/{id}'), 42, {}), 42);
  assert.equal(requestUserId(undefined, route('/api/orders'), undefined, { user_id: 9 }), 9);
  assert.equal(requestUserId(undefined, route('/api/orders'), undefined, { user_id: true }), undefined);
  assert.equal(requestUserId(undefined, route('/api/orders/{id}'), 5, {}), undefined, 'an order id is not a user id');
});

test('green serves a request itself only if its feature and the rollout are on', async () => {
  const flags = staticFlags({ users: true, orders: false }, (userId, viaRouter) => viaRouter || userId === 1);
  assert.equal(await decideImpl(flags, route('/api/users/{id}'), 1, false, undefined), TYPESCRIPT);
  assert.equal(await decideImpl(flags, route('/api/users/{id}'), 2, false, undefined), RAILS, 'rollout off for user 2');
  assert.equal(await decideImpl(flags, route('/api/users/{id}'), 2, true, undefined), TYPESCRIPT, 'routed requests: rollout on');
  assert.equal(await decideImpl(flags, route('/api/orders/{id}'), 1, true, undefined), RAILS, 'orders flag off');
  assert.equal(await decideImpl(undefined, route('/api/users/{id}'), 1, true, undefined), RAILS, 'no flags: Rails');
});

test('X-Cutover-Serve forces a side on direct requests only, and must name one', async () => {
  const flags = staticFlags({}, () => false);
  assert.equal(await decideImpl(flags, route('/api/orders/{id}'), 1, false, 'typescript'), TYPESCRIPT);
  assert.equal(await decideImpl(staticFlags({ orders: true }, () => true), route('/api/orders/{id}'), 1, false, 'rails'), RAILS);
  assert.equal(await decideImpl(flags, route('/api/orders/{id}'), 1, true, 'typescript'), RAILS, 'ignored via the router');
  await assert.rejects(decideImpl(flags, route('/api/orders/{id}'), 1, false, 'python'),
                       (error: unknown) => error instanceof HttpError && error.status === 400 && /must be typescript or rails/.test(error.message));
});

test('the flags report says whether every feature is on Rails', async () => {
  assert.deepEqual(await flagsReport(staticFlags({ users: true }, () => true)),
                   { color: 'green', backend: 'test', evaluates_flags: true, features: { users: true, orders: false }, serves_rails: false, provider_status: 'READY' });
  assert.equal((await flagsReport(staticFlags({}, () => true))).serves_rails, true);
  assert.equal((await flagsReport(undefined)).evaluates_flags, false);
});
