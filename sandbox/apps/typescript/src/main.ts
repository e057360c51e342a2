/**
 * Process entry point: `node dist/src/main.js --port 18082 --rails-url http://127.0.0.1:18081`
 * (the flags sandbox/launcher/apps.py passes, environment variables otherwise; see config.ts and
 * README.md). Starts the flag evaluator, the database pool, the BullMQ worker and the WebSocket
 * feed, listens on loopback, and stops in order on SIGTERM/SIGINT.
 */
// First: error reporting and tracing must be set up before fastify, pg and ioredis are required.
import { errorReporter as errors, errorReportingProblem } from './instrument';

import fs from 'node:fs';

import { buildApp } from './app';
import { ConfigError, loadConfig, withArgs } from './config';
import { Database, SchemaGate } from './db';
import { FlagdFileEvaluator } from './flagd';
import { RailsForwarder } from './forward';
import { OrderConfirmations, redisOptions } from './jobs';
import { createLogger, releaseFrom } from './logging';
import { Metrics } from './metrics';
import type { FlagEvaluator } from './routes';
import { UnleashEvaluator } from './unleash';
import { OrderFeed } from './ws';

// Every line on stdout is one JSON object (src/logging.ts): the launcher's green.log parses line by line.
const logger = createLogger({ color: 'green', release: releaseFrom(process.env) });
const log = (message: string): void => { logger.info(message); };

async function main(): Promise<number> {
  if (errorReportingProblem) {
    log(errorReportingProblem);
    return 2;
  }
  let config;
  try {
    config = loadConfig(withArgs(process.env, process.argv.slice(2)));
  } catch (error) {
    if (error instanceof ConfigError) {
      log(error.message);
      return 2;
    }
    throw error;
  }
  let flags: FlagEvaluator;
  try {
    flags = config.flagBackend === 'file'
      ? await FlagdFileEvaluator.open(config.flagsFile as string, config.flagsPollMs)
      : await UnleashEvaluator.open(config.unleashUrl as string, config.unleashClientToken as string);
  } catch (error) {
    log(`cannot evaluate feature flags: ${(error as Error).message}`);
    return 2;
  }
  const metrics = new Metrics();
  const db = new Database(config.databaseDsn, log);
  const rails = new RailsForwarder(config.railsUrl);
  const feed = new OrderFeed(db, metrics, log);
  let jobs: OrderConfirmations | undefined;
  const app = buildApp({ db, metrics, flags, rails, schema: new SchemaGate(db), log, logger,
                         confirmOrder: async (id) => jobs?.enqueue(id), errors });
  metrics.info.set({ color: 'green', runtime: 'node', version: process.versions.node, fastify: app.version }, 1);
  app.server.on('upgrade', (request, socket, head) => feed.handleUpgrade(request, socket, head));
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    log(`cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`);
    return 1;
  }
  // The worker starts once the port is ours: a second copy that cannot listen takes no jobs.
  jobs = new OrderConfirmations(redisOptions(config.redisUrl), db, metrics, log, (id, status) => feed.confirmed(id, status));
  if (config.pidfile) fs.writeFileSync(config.pidfile, `${process.pid}\n`);
  log(`listening on ${config.host}:${config.port} pid ${process.pid}; flags: ${flags.backend}; Rails at ${config.railsUrl.origin}; node ${process.version}; error reporting ${errors ? `on (release ${errors.release ?? 'unset'}, traces ${errors.tracesSampleRate})` : 'off (no SENTRY_DSN)'}`);

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    const deadline = setTimeout(() => process.exit(1), 10_000); // an orderly stop must not hang forever
    deadline.unref();
    await app.close();
    await feed.close();
    await jobs?.close().catch((error) => log(`bullmq close: ${error.message}`));
    rails.close();
    await flags.close();
    await db.close();
    await errors?.flush(2_000); // what was captured before the stop still reaches the tracker
    if (config.pidfile) fs.rmSync(config.pidfile, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return 0;
}

main().then((code) => { if (code !== 0) process.exit(code); }, (error) => {
  logger.fatal(`fatal: ${(error as Error).stack ?? error}`);
  process.exit(1);
});
