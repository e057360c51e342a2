import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConfigError, loadConfig, parseLibpqDsn, pgSettings, withArgs } from '../src/config';
import { redisOptions, throttled } from '../src/jobs';

const BASE = {
  SANDBOX_APP_DSN: 'host=127.0.0.1 port=15432 dbname=cutover', SANDBOX_REDIS_URL: 'redis://127.0.0.1:16379/0',
  SANDBOX_FLAGS_FILE: '/tmp/flagd.json',
};
const ARGS = ['--color', 'green', '--host', '127.0.0.1', '--port', '18082', '--rails-url', 'http://127.0.0.1:18081', '--pidfile=/tmp/g.pid'];

test('the launcher\'s command line and environment make a config', () => {
  const config = loadConfig(withArgs(BASE, ARGS));
  assert.equal(config.port, 18082);
  assert.equal(config.railsUrl.port, '18081');
  assert.equal(config.pidfile, '/tmp/g.pid');
  assert.equal(config.flagBackend, 'file');
  assert.equal(config.flagsPollMs, 50);
});

test('bad settings are refused naming the variable', () => {
  const refused = (env: Record<string, string>, argv: string[], message: RegExp) =>
    assert.throws(() => loadConfig(withArgs({ ...BASE, ...env }, argv)), (error: unknown) => error instanceof ConfigError && message.test(error.message));
  refused({}, ['--color', 'blue', ...ARGS.slice(2)], /TypeScript \(green\) app/);
  refused({}, ['--rails-url', 'http://127.0.0.1:18081'], /SANDBOX_APP_PORT=: give a port/);
  refused({}, [...ARGS, '--host', '0.0.0.0'], /loopback only/);
  refused({}, [...ARGS, '--rails-url', 'http://10.0.0.1:8080'], /stays on loopback/);
  refused({ SANDBOX_REDIS_URL: '' }, ARGS, /SANDBOX_REDIS_URL is not set/);
  refused({ SANDBOX_FLAG_BACKEND: 'launchdarkly' }, ARGS, /expected one of file, unleash/);
  refused({ SANDBOX_FLAGS_POLL_MS: '5' }, ARGS, /\[10, 60000\]/);
  refused({ SANDBOX_FLAG_BACKEND: 'unleash' }, ARGS, /SANDBOX_UNLEASH_URL is not set/);
  refused({ SANDBOX_FLAG_BACKEND: 'unleash', SANDBOX_UNLEASH_URL: 'http://127.0.0.1:4242', SANDBOX_UNLEASH_CLIENT_TOKEN: 'secret' }, ARGS, /malformed/);
  assert.throws(() => withArgs(BASE, ['--verbose']), /unknown argument "--verbose"/);
  assert.throws(() => withArgs(BASE, ['--port']), /--port needs a value/);
});

test('libpq DSNs from psycopg2.make_dsn become node-postgres settings', () => {
  assert.deepEqual(parseLibpqDsn("host=127.0.0.1 port=15432 dbname=cutover user=cutover password='a b\\'c'"),
                   { host: '127.0.0.1', port: '15432', dbname: 'cutover', user: 'cutover', password: "a b'c" });
  assert.deepEqual(parseLibpqDsn('postgresql://u@127.0.0.1:5432/db'), { connectionString: 'postgresql://u@127.0.0.1:5432/db' });
  assert.throws(() => parseLibpqDsn("host=x password='open"), /unterminated quoted value for password/);
  assert.throws(() => parseLibpqDsn('host'), /expected key=value/);
});

test('redis URLs give BullMQ connection options', () => {
  assert.deepEqual(redisOptions('redis://127.0.0.1:16379/2'), { host: '127.0.0.1', port: 16379, db: 2 });
  assert.deepEqual(redisOptions('redis://:s%40cret@127.0.0.1:16379'), { host: '127.0.0.1', port: 16379, db: 0, password: 's@cret' });
  assert.throws(() => redisOptions('redis://127.0.0.1:1/x'), /is not a number/);
});

test('libpq keys map to node-postgres names', () => {
  assert.deepEqual(pgSettings("host=127.0.0.1 port=15432 dbname=cutover user=u password='p w' connect_timeout=2"),
                   { host: '127.0.0.1', port: 15432, database: 'cutover', user: 'u', password: 'p w' });
  assert.throws(() => pgSettings('host=x sslcert=/tmp/c'), /DSN setting sslcert is not supported/);
});

test('a repeated log line is written once per window, then with its count', () => {
  const lines: string[] = [];
  let now = 0;
  const log = throttled((line) => lines.push(line), 10_000, () => now);
  log('redis down');
  log('redis down');
  log('other');
  now = 10_000;
  log('redis down');
  assert.deepEqual(lines, ['redis down', 'other', 'redis down (repeated 1 times)']);
});
