/**
 * Green's own handlers: (database, id from the path, JSON body) -> status and payload, on the
 * expanded shape. Writes go to the new columns (amount, currency, status_v2, unit_price,
 * email_normalized) and the expand migration's triggers fill the legacy ones for blue. Rows the
 * backfill has not reached yet have NULL new columns, so reads fall back to the legacy values.
 */
import { HttpError } from './errors';
import { Queryable, sqlState } from './db';
import { NO_WRITE_FAULT, type WriteFault } from './faults';
import { LineItemRow, OrderRow, lineItemJson, orderJson, parseNewOrder, parseNewUser } from './model';
import { RouteName } from './routes';

export interface ApiResult {
  status: number;
  payload: unknown;
  /** Set by order creation: the id whose confirmation job is queued after the commit. */
  createdOrderId?: number;
}

const ORDER_COLUMNS = `id, user_id, coalesce(amount, round(amount_cents / 100.0, 2))::text AS amount,
  coalesce(currency, 'USD') AS currency, coalesce(status_v2::text, status) AS status, created_at, updated_at`;
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';

export type ApiHandler = (db: Queryable, id: number | undefined, body: unknown, writeFault?: WriteFault) => Promise<ApiResult>;

// The expand migration's sync trigger on orders (include/sql/migrations/20261126000001_*.up.sql).
const ORDERS_SYNC_TRIGGER = 'orders_sync_shapes';

/** A dropped write's transaction ends here: rolled back, though the client is told it was created. */
class DroppedWrite extends Error {
  constructor(readonly orderId: number) {
    super(`order ${orderId} dropped by the drop_writes fault`);
  }
}

async function getUser(db: Queryable, id: number | undefined): Promise<ApiResult> {
  const rows = await db.query('SELECT id, email, name, created_at, updated_at FROM users WHERE id = $1', [id]);
  return rows.length ? { status: 200, payload: rows[0] } : { status: 404, payload: { error: `user ${id} not found` } };
}

async function createUser(db: Queryable, _id: number | undefined, body: unknown): Promise<ApiResult> {
  const user = parseNewUser(body);
  try {
    const rows = await db.query(
      `INSERT INTO users (email, email_normalized, name, created_at, updated_at)
       VALUES ($1::text, lower(btrim($1::text)), $2, now(), now()) RETURNING id`, [user.email, user.name]);
    return { status: 201, payload: rows[0] };
  } catch (error) {
    if (sqlState(error) === UNIQUE_VIOLATION) throw new HttpError(409, `email ${JSON.stringify(user.email)} already taken`);
    throw error;
  }
}

async function getOrder(db: Queryable, id: number | undefined): Promise<ApiResult> {
  const rows = await db.query(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1`, [id]);
  return rows.length ? { status: 200, payload: orderJson(rows[0] as unknown as OrderRow) }
    : { status: 404, payload: { error: `order ${id} not found` } };
}

async function listUserOrders(db: Queryable, id: number | undefined): Promise<ApiResult> {
  const rows = await db.query(`SELECT ${ORDER_COLUMNS} FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT 20`, [id]);
  return { status: 200, payload: { user_id: id, orders: rows.map((row) => orderJson(row as unknown as OrderRow)) } };
}

/**
 * The corrupt_writes fault's wrong amount: the cents read as whole units ("19.99" -> "1999.00"),
 * the classic unit bug of a money-type migration.
 */
export function corruptedAmount(amount: string): string {
  return `${amount.replace('.', '')}.00`;
}

async function createOrder(db: Queryable, _id: number | undefined, body: unknown, writeFault: WriteFault = NO_WRITE_FAULT): Promise<ApiResult> {
  const order = parseNewOrder(body);
  try {
    // One transaction: an order is acknowledged with all its line items or not at all.
    const orderId = await db.transaction(async (tx) => {
      let rows;
      if (writeFault.corrupt) {
        // The corrupt_writes fault: green writes both shapes itself, the new column wrong and the
        // legacy one as the client sent it, around the expand migration's sync trigger (as a
        // dual-writing app without triggers would). Disabled and re-enabled inside this transaction,
        // so no other session ever writes without it; they wait for this short transaction's lock.
        await tx.query(`ALTER TABLE orders DISABLE TRIGGER ${ORDERS_SYNC_TRIGGER}`);
        rows = await tx.query(
          `INSERT INTO orders (user_id, amount_cents, status, amount, currency, status_v2, created_at, updated_at)
           VALUES ($1, $2, 'pending', $3, $4, 'pending', now(), now()) RETURNING id`,
          [order.userId, Number(order.amount.replace('.', '')), corruptedAmount(order.amount), order.currency]);
        await tx.query(`ALTER TABLE orders ENABLE TRIGGER ${ORDERS_SYNC_TRIGGER}`);
      } else {
        rows = await tx.query(
          `INSERT INTO orders (user_id, amount, currency, status_v2, created_at, updated_at)
           VALUES ($1, $2, $3, 'pending', now(), now()) RETURNING id`, [order.userId, order.amount, order.currency]);
      }
      const created = rows[0].id as number;
      for (const item of order.lineItems) {
        await tx.query(
          `INSERT INTO line_items (order_id, sku, quantity, unit_price, created_at, updated_at)
           VALUES ($1, $2, $3, $4, now(), now())`, [created, item.sku, item.quantity, item.unitPrice]);
      }
      // The drop_writes fault: everything written, then rolled back instead of committed.
      if (writeFault.drop) throw new DroppedWrite(created);
      return created;
    });
    return { status: 201, payload: { id: orderId }, createdOrderId: orderId };
  } catch (error) {
    if (error instanceof DroppedWrite) return { status: 201, payload: { id: error.orderId } };
    if (sqlState(error) === FOREIGN_KEY_VIOLATION) throw new HttpError(422, `user ${order.userId} does not exist`);
    throw error;
  }
}

async function getOrderLineItems(db: Queryable, id: number | undefined): Promise<ApiResult> {
  const orders = await db.query('SELECT 1 FROM orders WHERE id = $1', [id]);
  if (!orders.length) return { status: 404, payload: { error: `order ${id} not found` } };
  const rows = await db.query(
    `SELECT id, order_id, sku, quantity, coalesce(unit_price, round(unit_price_cents / 100.0, 2))::text AS unit_price,
            created_at, updated_at FROM line_items WHERE order_id = $1 ORDER BY id`, [id]);
  return { status: 200, payload: { order_id: id, line_items: rows.map((row) => lineItemJson(row as unknown as LineItemRow)) } };
}

export const HANDLERS: Record<RouteName, ApiHandler> = {
  getUser, createUser, getOrder, listUserOrders, createOrder, getOrderLineItems,
};

/** The order's status for the WebSocket feed, or undefined for an unknown order. */
export async function orderStatus(db: Queryable, id: number): Promise<string | undefined> {
  const rows = await db.query('SELECT coalesce(status_v2::text, status) AS status FROM orders WHERE id = $1', [id]);
  return rows.length ? String(rows[0].status) : undefined;
}
