/**
 * Green's background job on the sandbox Redis: a BullMQ queue `order-confirmation` (keys under
 * the `green` prefix, apart from blue's Sidekiq). Each order green creates queues one job after
 * its commit; the worker writes the confirmation into the shared `outbox` table
 * (include/sql/bootstrap/outbox.sql; blue's Sidekiq job writes it too) with processed_by = 'bullmq' and tells the WebSocket feed.
 * The job id is the order id and the insert skips an existing row, so a retried or repeated job
 * writes one row. Queueing never delays or fails the HTTP answer: the order is already committed;
 * a job that cannot be queued is counted (bullmq_jobs_enqueue_failed_total) and logged.
 */
import { type Job, Queue, Worker } from 'bullmq';

import type { Queryable } from './db';
import type { Metrics } from './metrics';

export const QUEUE_NAME = 'order-confirmation';
export const QUEUE_PREFIX = 'green';
export const OUTBOX_TOPIC = 'order.confirmed'; // blue's OutboxMessage::ORDER_CONFIRMED
export const PROCESSED_BY = 'bullmq';
const ENQUEUE_TIMEOUT_MS = 1000;

export interface ConfirmationJob {
  order_id: number;
}

export interface RedisOptions {
  host: string;
  port: number;
  db: number;
  password?: string;
}

export function redisOptions(url: string): RedisOptions {
  const parsed = new URL(url);
  const db = parsed.pathname.replace(/^\//, '') || '0';
  if (!/^\d+$/.test(db)) throw new Error(`redis URL ${url}: database ${JSON.stringify(db)} is not a number`);
  return { host: parsed.hostname, port: Number(parsed.port || 6379), db: Number(db),
           ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}) };
}

/**
 * The outbox insert (the table blue's Sidekiq job writes too): one `order.confirmed` row per
 * order, whichever attempt or color gets there first. The payload carries both money shapes.
 */
export const OUTBOX_INSERT = `
  INSERT INTO outbox (topic, key, payload, created_at, processed_by)
  SELECT $2::varchar, o.id::text, jsonb_build_object('order_id', o.id, 'user_id', o.user_id,
           'amount_cents', coalesce(o.amount_cents, round(o.amount * 100)::bigint),
           'amount', coalesce(o.amount, round(o.amount_cents / 100.0, 2))::text,
           'currency', coalesce(o.currency, 'USD'), 'status', coalesce(o.status_v2::text, o.status)),
         now(), $3::varchar
  FROM orders o
  WHERE o.id = $1::bigint
  ON CONFLICT (topic, key) DO NOTHING
  RETURNING key`;

export type ConfirmedListener = (orderId: number, status: string) => void;

/**
 * A logger that repeats a message at most once per `everyMs`: while Redis is down BullMQ reports
 * the same connection error many times a second, which would flood the log.
 */
export function throttled(log: (message: string) => void, everyMs: number, clock: () => number = Date.now): (message: string) => void {
  const lastSeen = new Map<string, { at: number; suppressed: number }>();
  return (message) => {
    const now = clock();
    const seen = lastSeen.get(message);
    if (seen && now - seen.at < everyMs) {
      seen.suppressed++;
      return;
    }
    log(seen?.suppressed ? `${message} (repeated ${seen.suppressed} times)` : message);
    lastSeen.set(message, { at: now, suppressed: 0 });
    if (lastSeen.size > 100) lastSeen.delete(lastSeen.keys().next().value as string);
  };
}

export class OrderConfirmations {
  private readonly queue: Queue<ConfirmationJob>;
  private readonly worker: Worker<ConfirmationJob>;
  private readonly log: (message: string) => void;

  constructor(redis: RedisOptions, private readonly db: Queryable, private readonly metrics: Metrics,
              log: (message: string) => void, private readonly onConfirmed: ConfirmedListener) {
    this.log = throttled(log, 10_000);
    // No offline queue for the producer: with Redis down, add() fails at once instead of piling up.
    this.queue = new Queue(QUEUE_NAME, { prefix: QUEUE_PREFIX, connection: { ...redis, enableOfflineQueue: false },
                                          defaultJobOptions: { attempts: 3, backoff: { type: 'exponential', delay: 500 },
                                                               removeOnComplete: 1000, removeOnFail: 1000 } });
    this.queue.on('error', (error) => this.log(`bullmq queue: ${error.message}`));
    this.worker = new Worker(QUEUE_NAME, (job) => this.process(job),
                             { prefix: QUEUE_PREFIX, connection: { ...redis, maxRetriesPerRequest: null }, concurrency: 2 });
    this.worker.on('completed', () => metrics.jobsCompleted.inc({ queue: QUEUE_NAME }));
    this.worker.on('failed', (job, error) => {
      metrics.jobsFailed.inc({ queue: QUEUE_NAME });
      this.log(`bullmq job ${job?.id ?? '?'} failed (attempt ${job?.attemptsMade ?? '?'}): ${error.message}`);
    });
    this.worker.on('error', (error) => this.log(`bullmq worker: ${error.message}`));
    metrics.jobsCompleted.inc({ queue: QUEUE_NAME }, 0);
    metrics.jobsFailed.inc({ queue: QUEUE_NAME }, 0);
    metrics.jobsEnqueueFailed.inc({ queue: QUEUE_NAME }, 0);
  }

  /** Queue the confirmation of a committed order; resolves false (never throws) if Redis says no. */
  async enqueue(orderId: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.queue.add('confirm', { order_id: orderId }, { jobId: `order-${orderId}` }),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ENQUEUE_TIMEOUT_MS} ms`)), ENQUEUE_TIMEOUT_MS); }),
      ]);
      return true;
    } catch (error) {
      this.metrics.jobsEnqueueFailed.inc({ queue: QUEUE_NAME });
      this.log(`order ${orderId}: confirmation not queued: ${(error as Error).message}`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async process(job: Job<ConfirmationJob>): Promise<void> {
    if (job.attemptsMade === 0) {
      this.metrics.queueWait.observe({ queue: QUEUE_NAME }, Math.max(0, Date.now() - job.timestamp) / 1000);
    }
    const stop = this.metrics.jobDuration.startTimer({ queue: QUEUE_NAME });
    try {
      const orderId = job.data.order_id;
      if (!Number.isSafeInteger(orderId) || orderId < 1) throw new Error(`job data has no valid order_id: ${JSON.stringify(job.data)}`);
      await this.db.query(OUTBOX_INSERT, [orderId, OUTBOX_TOPIC, PROCESSED_BY]);
      const rows = await this.db.query('SELECT coalesce(status_v2::text, status) AS status FROM orders WHERE id = $1', [orderId]);
      if (!rows.length) throw new Error(`order ${orderId} does not exist`);
      this.onConfirmed(orderId, String(rows[0].status));
    } finally {
      stop();
    }
  }

  async close(): Promise<void> {
    await this.worker.close();
    await this.queue.close();
  }
}
