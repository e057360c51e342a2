/**
 * WebSocket feed of order status (`ws`), at /ws/orders/{id}: on connect the order's current
 * status, then a message whenever it changes (whoever changed it: blue, green, a job) and when
 * green's confirmation job has written the order's outbox row. A client may follow more orders by
 * sending {"subscribe": <id>}. Changes are found by one query per second over all followed
 * orders; bounded: MAX_CONNECTIONS connections, MAX_ORDERS_PER_CONNECTION orders each.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

import { WebSocket, WebSocketServer } from 'ws';

import type { Queryable } from './db';
import type { Metrics } from './metrics';

export const WS_PATH = /^\/ws\/orders\/(\d{1,18})$/;
export const MAX_CONNECTIONS = 200;
export const MAX_ORDERS_PER_CONNECTION = 20;
export const POLL_MS = 1000;

export type OrderEvent =
  | { type: 'status'; order_id: number; status: string }
  | { type: 'confirmed'; order_id: number; status: string }
  | { type: 'error'; error: string };

/** `{"subscribe": <id>}` from a client: the id, or an error message. */
export function parseClientMessage(raw: string): { subscribe: number } | { error: string } {
  let message: unknown;
  try {
    message = JSON.parse(raw);
  } catch {
    return { error: 'message is not valid JSON' };
  }
  const id = (message as { subscribe?: unknown })?.subscribe;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) {
    return { error: 'expected {"subscribe": <order id>}' };
  }
  return { subscribe: id };
}

export class OrderFeed {
  private readonly server = new WebSocketServer({ noServer: true, maxPayload: 1024 });
  private readonly followers = new Map<number, Set<WebSocket>>();
  private readonly lastStatus = new Map<number, string>();
  private readonly timer: NodeJS.Timeout;
  private polling = false;

  constructor(private readonly db: Queryable, private readonly metrics: Metrics, private readonly log: (message: string) => void) {
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  /** Node's 'upgrade' event: ours if the path is /ws/orders/{id}, else a 404 and close. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const found = WS_PATH.exec(new URL(request.url ?? '/', 'http://x').pathname);
    if (!found || this.server.clients.size >= MAX_CONNECTIONS) {
      socket.end(found ? 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    this.server.handleUpgrade(request, socket, head, (ws) => this.connected(ws, Number(found[1])));
  }

  private connected(ws: WebSocket, orderId: number): void {
    this.metrics.wsConnections.inc();
    const mine = new Set<number>();
    ws.on('close', () => {
      this.metrics.wsConnections.dec();
      for (const id of mine) this.unfollow(id, ws);
    });
    ws.on('error', (error) => this.log(`websocket: ${error.message}`));
    ws.on('message', (data) => {
      const parsed = parseClientMessage(data.toString());
      if ('error' in parsed) return this.send(ws, { type: 'error', error: parsed.error });
      if (mine.size >= MAX_ORDERS_PER_CONNECTION) {
        return this.send(ws, { type: 'error', error: `at most ${MAX_ORDERS_PER_CONNECTION} orders per connection` });
      }
      void this.follow(ws, parsed.subscribe, mine);
    });
    void this.follow(ws, orderId, mine);
  }

  private async follow(ws: WebSocket, orderId: number, mine: Set<number>): Promise<void> {
    try {
      const rows = await this.db.query('SELECT coalesce(status_v2::text, status) AS status FROM orders WHERE id = $1', [orderId]);
      if (!rows.length) return this.send(ws, { type: 'error', error: `order ${orderId} not found` });
      if (ws.readyState !== WebSocket.OPEN) return;
      mine.add(orderId);
      let set = this.followers.get(orderId);
      if (!set) this.followers.set(orderId, (set = new Set()));
      set.add(ws);
      const status = String(rows[0].status);
      this.lastStatus.set(orderId, status);
      this.send(ws, { type: 'status', order_id: orderId, status });
    } catch (error) {
      this.send(ws, { type: 'error', error: (error as Error).message });
    }
  }

  private unfollow(orderId: number, ws: WebSocket): void {
    const set = this.followers.get(orderId);
    set?.delete(ws);
    if (set && set.size === 0) {
      this.followers.delete(orderId);
      this.lastStatus.delete(orderId);
    }
  }

  /** The confirmation job's news, to everyone following the order. */
  confirmed(orderId: number, status: string): void {
    for (const ws of this.followers.get(orderId) ?? []) this.send(ws, { type: 'confirmed', order_id: orderId, status });
  }

  private async poll(): Promise<void> {
    if (this.polling || this.followers.size === 0) return;
    this.polling = true;
    try {
      const rows = await this.db.query('SELECT id, coalesce(status_v2::text, status) AS status FROM orders WHERE id = ANY($1::bigint[])',
                                       [[...this.followers.keys()]]);
      for (const row of rows) {
        const id = Number(row.id);
        const status = String(row.status);
        if (this.lastStatus.get(id) !== status) {
          this.lastStatus.set(id, status);
          for (const ws of this.followers.get(id) ?? []) this.send(ws, { type: 'status', order_id: id, status });
        }
      }
    } catch (error) {
      this.log(`websocket status poll: ${(error as Error).message}`);
    } finally {
      this.polling = false;
    }
  }

  private send(ws: WebSocket, event: OrderEvent): void {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(event));
      this.metrics.wsMessages.inc();
    }
  }

  connections(): number {
    return this.server.clients.size;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const ws of this.server.clients) ws.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
