/**
 * Request validation and JSON mapping of the API, on the EXPANDED (TypeScript) shape of the schema
 * (migration 20261126000001): orders carry `amount` numeric(12,2), `currency` char(3) and
 * `status_v2`; line items `unit_price`. Money never goes through a float: amounts travel as
 * decimal strings (pg returns numeric as text) and cents as integers computed from the digits.
 * Pure: no I/O.
 */
import { HttpError } from './errors';

export const MAX_CENTS = 2 ** 31 - 1; // amount_cents is a 32-bit integer in the legacy shape
export const MAX_LINE_ITEMS = 50;
const DECIMAL = /^(\d{1,8})(?:\.(\d{1,2}))?$/;
const CURRENCY = /^[A-Z]{3}$/;

type Body = Record<string, unknown>;

export function asObject(body: unknown): Body {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Body) : {};
}

export function requireString(body: unknown, name: string): string {
  const value = asObject(body)[name];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new HttpError(400, `${name} is required and must be a non-empty string`);
  }
  return value;
}

export function requireInt(body: unknown, name: string, minimum: number, maximum: number = Number.MAX_SAFE_INTEGER): number {
  const value = asObject(body)[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > maximum) {
    throw new HttpError(400, `${name} is required and must be an integer in [${minimum}, ${maximum}]`);
  }
  return value;
}

/** Cents of a decimal string with at most 2 places ("12.3" -> 1230); undefined if not one. */
export function decimalToCents(text: string): number | undefined {
  const found = DECIMAL.exec(text.trim());
  if (!found) return undefined;
  return Number(found[1]) * 100 + Number((found[2] ?? '').padEnd(2, '0'));
}

/** "12.30" for 1230: the text PostgreSQL's numeric(12,2) gives back. */
export function centsToDecimal(cents: number): string {
  const whole = Math.floor(cents / 100);
  return `${whole}.${String(cents % 100).padStart(2, '0')}`;
}

/**
 * A money field in cents from `<field>` (decimal number or string, 2 places) and/or
 * `<field>_cents` (integer); both given must agree. `label` names the fields in errors.
 */
export function parseMoney(body: unknown, field: string): number {
  const fields = asObject(body);
  const centsField = `${field}_cents`;
  if (!(field in fields) && !(centsField in fields)) {
    throw new HttpError(400, `${field} (decimal) or ${centsField} (integer) is required`);
  }
  const fromCents = centsField in fields ? requireInt(fields, centsField, 1, MAX_CENTS) : undefined;
  if (!(field in fields)) {
    return fromCents as number;
  }
  const raw = fields[field];
  if (typeof raw !== 'number' && typeof raw !== 'string') {
    throw new HttpError(400, `${field} must be a decimal number or string, got ${JSON.stringify(raw)}`);
  }
  const cents = decimalToCents(String(raw));
  if (cents === undefined || cents < 1 || cents > MAX_CENTS) {
    throw new HttpError(400, `${field} must have at most 2 decimal places and lie in [0.01, ${centsToDecimal(MAX_CENTS)}], got ${JSON.stringify(raw)}`);
  }
  if (fromCents !== undefined && fromCents !== cents) {
    throw new HttpError(400, `${field} ${centsToDecimal(cents)} and ${centsField} ${fromCents} disagree`);
  }
  return cents;
}

export interface NewUser {
  email: string;
  name: string | null;
}

export function parseNewUser(body: unknown): NewUser {
  const email = requireString(body, 'email');
  const name = asObject(body).name ?? null;
  if (name !== null && typeof name !== 'string') {
    throw new HttpError(400, 'name must be a string');
  }
  return { email, name };
}

export interface NewLineItem {
  sku: string;
  quantity: number;
  unitPrice: string; // decimal text, written to the expanded column unit_price
}

export interface NewOrder {
  userId: number;
  amount: string; // decimal text, written to the expanded column amount
  currency: string;
  lineItems: NewLineItem[];
}

export function parseNewOrder(body: unknown): NewOrder {
  const userId = requireInt(body, 'user_id', 1);
  const amount = centsToDecimal(parseMoney(body, 'amount'));
  const fields = asObject(body);
  const currency = fields.currency ?? 'USD';
  if (typeof currency !== 'string' || !CURRENCY.test(currency)) {
    throw new HttpError(400, `currency must be a 3-letter ISO code like USD, got ${JSON.stringify(currency)}`);
  }
  const rawItems = fields.line_items ?? [];
  if (!Array.isArray(rawItems) || rawItems.length > MAX_LINE_ITEMS) {
    throw new HttpError(400, `line_items must be a list of at most ${MAX_LINE_ITEMS} items`);
  }
  const lineItems = rawItems.map((item, index) => {
    try {
      const sku = requireString(item, 'sku');
      if (sku.length > 64) throw new HttpError(400, 'sku must be at most 64 characters');
      return { sku, quantity: requireInt(item, 'quantity', 1, 10_000), unitPrice: centsToDecimal(parseMoney(item, 'unit_price')) };
    } catch (error) {
      if (error instanceof HttpError) throw new HttpError(400, `line_items[${index}]: ${error.message}`);
      throw error;
    }
  });
  return { userId, amount, currency, lineItems };
}

// --------------------------------------------------------------------------- rows -> JSON

export interface OrderRow {
  id: number;
  user_id: number;
  amount: string;
  currency: string;
  status: string;
  created_at: Date;
  updated_at: Date;
}

/** The same fields as blue's order (amount_cents included), plus `amount` and `currency`. */
export function orderJson(row: OrderRow): Record<string, unknown> {
  const cents = decimalToCents(row.amount);
  if (cents === undefined) {
    throw new Error(`order ${row.id}: amount ${JSON.stringify(row.amount)} is not a 2-place decimal`);
  }
  return { id: row.id, user_id: row.user_id, amount_cents: cents, status: row.status,
           created_at: row.created_at, updated_at: row.updated_at, amount: row.amount, currency: row.currency.trim() };
}

export interface LineItemRow {
  id: number;
  order_id: number;
  sku: string;
  quantity: number;
  unit_price: string;
  created_at: Date;
  updated_at: Date;
}

// order_id in every item, as Rails renders it: clients of the legacy API may read it there.
export function lineItemJson(row: LineItemRow): Record<string, unknown> {
  return { id: row.id, order_id: row.order_id, sku: row.sku, quantity: row.quantity, unit_price_cents: decimalToCents(row.unit_price),
           unit_price: row.unit_price, created_at: row.created_at, updated_at: row.updated_at };
}
