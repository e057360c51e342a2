import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HttpError } from '../src/errors';
import { centsToDecimal, decimalToCents, lineItemJson, orderJson, parseMoney, parseNewOrder, parseNewUser } from '../src/model';

function refused(work: () => unknown, message: RegExp): void {
  assert.throws(work, (error: unknown) => error instanceof HttpError && error.status === 400 && message.test(error.message));
}

test('decimal text and cents convert exactly, without floats', () => {
  assert.equal(decimalToCents('12.3'), 1230);
  assert.equal(decimalToCents(' 0.07 '), 7);
  assert.equal(decimalToCents('21474836.47'), 2 ** 31 - 1);
  assert.equal(decimalToCents('1.005'), undefined);
  assert.equal(decimalToCents('1e3'), undefined);
  assert.equal(decimalToCents('-1.00'), undefined);
  assert.equal(centsToDecimal(1230), '12.30');
  assert.equal(centsToDecimal(7), '0.07');
  assert.equal(centsToDecimal(0.1 * 3 * 100 | 0), '0.30');
});

test('money comes from the decimal field, the cents field, or both when they agree', () => {
  assert.equal(parseMoney({ amount_cents: 1234 }, 'amount'), 1234);
  assert.equal(parseMoney({ amount: '12.34' }, 'amount'), 1234);
  assert.equal(parseMoney({ amount: 12.34 }, 'amount'), 1234);
  assert.equal(parseMoney({ amount: '12.34', amount_cents: 1234 }, 'amount'), 1234);
  refused(() => parseMoney({}, 'amount'), /amount \(decimal\) or amount_cents \(integer\) is required/);
  refused(() => parseMoney({ amount: '12.34', amount_cents: 1235 }, 'amount'), /amount 12.34 and amount_cents 1235 disagree/);
  refused(() => parseMoney({ amount: '0.00' }, 'amount'), /at most 2 decimal places and lie in \[0.01, 21474836.47\]/);
  refused(() => parseMoney({ amount: '21474836.48' }, 'amount'), /lie in/);
  refused(() => parseMoney({ amount: true }, 'amount'), /decimal number or string, got true/);
  refused(() => parseMoney({ amount_cents: 12.5 }, 'amount'), /amount_cents is required and must be an integer/);
});

test('a new order needs a user, takes USD by default and validates each line item by index', () => {
  assert.deepEqual(parseNewOrder({ user_id: 1, amount_cents: 1234 }), { userId: 1, amount: '12.34', currency: 'USD', lineItems: [] });
  assert.deepEqual(parseNewOrder({ user_id: 2, amount: '5', currency: 'EUR', line_items: [{ sku: 'A-1', quantity: 2, unit_price_cents: 250 }] }),
                   { userId: 2, amount: '5.00', currency: 'EUR', lineItems: [{ sku: 'A-1', quantity: 2, unitPrice: '2.50' }] });
  refused(() => parseNewOrder({ amount_cents: 1 }), /user_id is required/);
  refused(() => parseNewOrder({ user_id: true, amount_cents: 1 }), /user_id is required/);
  refused(() => parseNewOrder({ user_id: 1, amount_cents: 1, currency: 'usd' }), /currency must be a 3-letter ISO code/);
  refused(() => parseNewOrder({ user_id: 1, amount_cents: 1, line_items: {} }), /line_items must be a list/);
  refused(() => parseNewOrder({ user_id: 1, amount_cents: 1, line_items: [{ sku: 'A', quantity: 1, unit_price: 1 }, { sku: 'B', quantity: 0, unit_price: 1 }] }),
          /line_items\[1\]: quantity is required and must be an integer in \[1, 10000\]/);
});

test('a new user needs an email; name is optional text', () => {
  assert.deepEqual(parseNewUser({ email: 'a@example.com' }), { email: 'a@example.com', name: null });
  refused(() => parseNewUser({ email: '  ' }), /email is required/);
  refused(() => parseNewUser({ email: 'a@example.com', name: 3 }), /name must be a string/);
});

test('an order row maps to blue\'s fields plus amount and currency', () => {
  const when = new Date('2026-01-02T03:04:05.678Z');
  const json = orderJson({ id: 5, user_id: 1, amount: '12.30', currency: 'USD', status: 'paid', created_at: when, updated_at: when });
  assert.deepEqual(Object.keys(json), ['id', 'user_id', 'amount_cents', 'status', 'created_at', 'updated_at', 'amount', 'currency']);
  assert.equal(json.amount_cents, 1230);
  assert.equal(JSON.stringify(json.created_at), '"2026-01-02T03:04:05.678Z"');
  assert.throws(() => orderJson({ id: 6, user_id: 1, amount: '1.234', currency: 'USD', status: 'paid', created_at: when, updated_at: when }), /not a 2-place decimal/);
  const item = lineItemJson({ id: 1, order_id: 5, sku: 'A', quantity: 2, unit_price: '2.50', created_at: when, updated_at: when });
  assert.equal(item.unit_price_cents, 250);
  // Rails' members in Rails' order (order_id in every item), then the expanded shape's decimal.
  assert.deepEqual(Object.keys(item), ['id', 'order_id', 'sku', 'quantity', 'unit_price_cents', 'unit_price', 'created_at', 'updated_at']);
});
