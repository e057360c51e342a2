/**
 * Metrics under the Node ecosystem's usual names (prom-client, express-prom-bundle style):
 * `http_request_duration_seconds{method,route,status_code}` and `http_requests_total` for what
 * green's own code serves, default process/Node.js metrics, BullMQ job counters and queue wait,
 * and open WebSocket connections. Prometheus adds `color="green"` as a target label. Requests
 * forwarded to Rails are counted apart (`http_forwarded_requests_total`): green's SLIs cover its
 * own code, and blue already counts the forwarded request as its own.
 */
import client from 'prom-client';

import { API_ROUTES } from './routes';

// Fine around the app's usual 1-20 ms, coarse up to the 30 s of injected latency.
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30];
export const QUEUE_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Metrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'method' | 'route' | 'status_code'>;
  readonly duration: client.Histogram<'method' | 'route' | 'status_code'>;
  readonly forwarded: client.Counter<'method' | 'route' | 'status_code'>;
  readonly forwardDuration: client.Histogram<'method' | 'route'>;
  readonly jobsCompleted: client.Counter<'queue'>;
  readonly jobsFailed: client.Counter<'queue'>;
  readonly jobsEnqueueFailed: client.Counter<'queue'>;
  readonly queueWait: client.Histogram<'queue'>;
  readonly jobDuration: client.Histogram<'queue'>;
  readonly wsConnections: client.Gauge;
  readonly wsMessages: client.Counter;
  readonly info: client.Gauge<'color' | 'runtime' | 'version' | 'fastify'>;

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    const httpLabels = ['method', 'route', 'status_code'] as const;
    this.requests = new client.Counter({ name: 'http_requests_total', help: 'HTTP requests served by green\'s own code',
                                         labelNames: httpLabels, registers });
    this.duration = new client.Histogram({ name: 'http_request_duration_seconds', help: 'Request duration, injected latency included',
                                           labelNames: httpLabels, buckets: LATENCY_BUCKETS, registers });
    this.forwarded = new client.Counter({ name: 'http_forwarded_requests_total', help: 'API requests forwarded to Rails (blue) because of the feature flags',
                                          labelNames: httpLabels, registers });
    this.forwardDuration = new client.Histogram({ name: 'http_forward_duration_seconds', help: 'Time to answer a forwarded request, blue\'s time included',
                                                  labelNames: ['method', 'route'], buckets: LATENCY_BUCKETS, registers });
    this.jobsCompleted = new client.Counter({ name: 'bullmq_jobs_completed_total', help: 'BullMQ jobs completed', labelNames: ['queue'], registers });
    this.jobsFailed = new client.Counter({ name: 'bullmq_jobs_failed_total', help: 'BullMQ job attempts that failed', labelNames: ['queue'], registers });
    this.jobsEnqueueFailed = new client.Counter({ name: 'bullmq_jobs_enqueue_failed_total', help: 'Jobs that could not be queued (Redis unavailable)',
                                                  labelNames: ['queue'], registers });
    this.queueWait = new client.Histogram({ name: 'bullmq_job_wait_duration_seconds', help: 'Time a job waited in the queue before a worker took it',
                                            labelNames: ['queue'], buckets: QUEUE_WAIT_BUCKETS, registers });
    this.jobDuration = new client.Histogram({ name: 'bullmq_job_duration_seconds', help: 'Time a worker spent on a job',
                                              labelNames: ['queue'], buckets: LATENCY_BUCKETS, registers });
    this.wsConnections = new client.Gauge({ name: 'ws_connections_active', help: 'Open WebSocket connections', registers });
    this.wsMessages = new client.Counter({ name: 'ws_messages_sent_total', help: 'WebSocket messages sent', registers });
    // Like blue's app_info: the rehearsal result reports them (runtime "node 20.18.0 / fastify 5.12.8").
    this.info = new client.Gauge({ name: 'app_info', help: 'Always 1; identifies the color, runtime and versions of this app',
                                   labelNames: ['color', 'runtime', 'version', 'fastify'], registers });
    this.precreate();
  }

  /**
   * 0-valued series for each API route's success and 500 codes from the start: rate() cannot see
   * the 0 -> 1 step of a series that appears at 1, so the first error would be invisible.
   */
  private precreate(): void {
    for (const route of API_ROUTES) {
      for (const code of [route.successCode, 500]) {
        const labels = { method: route.method, route: route.template, status_code: String(code) };
        this.requests.inc(labels, 0);
        this.duration.zero(labels);
      }
    }
  }

  observe(method: string, route: string, statusCode: number, seconds: number): void {
    const labels = { method, route, status_code: String(statusCode) };
    this.requests.inc(labels);
    this.duration.observe(labels, seconds);
  }

  observeForwarded(method: string, route: string, statusCode: number, seconds: number): void {
    this.forwarded.inc({ method, route, status_code: String(statusCode) });
    this.forwardDuration.observe({ method, route }, seconds);
  }

  contentType(): string {
    return this.registry.contentType;
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }
}
