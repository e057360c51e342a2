/**
 * OpenAPI 3.1 description of green's API, served at /openapi.json (later stages fuzz it and
 * compare it with blue's). Written by hand next to the handlers; the unit tests check that every
 * API route has an operation here and the other way round.
 */
const error = { $ref: '#/components/schemas/Error' };
const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const idParam = (what: string) => ({ name: 'id', in: 'path', required: true, description: `${what} id`,
                                     schema: { type: 'integer', minimum: 1, maximum: 999999999999999999 } });
const userHeader = { name: 'X-User-Id', in: 'header', required: false, description: 'user the feature flags are evaluated for',
                     schema: { type: 'string', pattern: '^[0-9]+$' } };
const serveHeader = { name: 'X-Cutover-Serve', in: 'header', required: false,
                      description: 'direct requests only: force green\'s own code (typescript) or Rails', schema: { type: 'string', enum: ['typescript', 'rails'] } };
const common = [userHeader, serveHeader];
const failures = {
  400: { description: 'invalid request', ...json(error) },
  502: { description: 'forwarded to Rails, which could not answer', ...json(error) },
  503: { description: 'database unavailable or schema below 20261126000001', ...json(error) },
};
const timestamps = { created_at: { type: 'string', format: 'date-time' }, updated_at: { type: 'string', format: 'date-time' } };

export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'cutover sandbox service (green, TypeScript)', version: '1.0.0',
          description: 'Users and orders with line items. Requests whose feature flag is off are answered by Rails (blue).' },
  servers: [{ url: '/' }],
  paths: {
    '/api/users': {
      post: { operationId: 'createUser', tags: ['users'], parameters: common,
              requestBody: { required: true, ...json({ $ref: '#/components/schemas/NewUser' }) },
              responses: { 201: { description: 'created', ...json({ $ref: '#/components/schemas/Created' }) },
                           409: { description: 'email already taken', ...json(error) }, ...failures } },
    },
    '/api/users/{id}': {
      get: { operationId: 'getUser', tags: ['users'], parameters: [idParam('user'), ...common],
             responses: { 200: { description: 'the user', ...json({ $ref: '#/components/schemas/User' }) },
                          404: { description: 'no such user', ...json(error) }, ...failures } },
    },
    '/api/users/{id}/orders': {
      get: { operationId: 'listUserOrders', tags: ['orders'], parameters: [idParam('user'), ...common],
             responses: { 200: { description: 'the user\'s 20 latest orders, newest first', headers: {
               'X-Experiment-Order-Summary': { description: 'experiment variant (green\'s own answers)', schema: { type: 'string', enum: ['control', 'treatment'] } } },
               ...json({ type: 'object', required: ['user_id', 'orders'], properties: {
                 user_id: { type: 'integer' }, orders: { type: 'array', items: { $ref: '#/components/schemas/Order' } } } }) }, ...failures } },
    },
    '/api/orders': {
      post: { operationId: 'createOrder', tags: ['orders'], parameters: common,
              requestBody: { required: true, ...json({ $ref: '#/components/schemas/NewOrder' }) },
              responses: { 201: { description: 'created (its confirmation job is queued)', ...json({ $ref: '#/components/schemas/Created' }) },
                           422: { description: 'no such user', ...json(error) }, ...failures } },
    },
    '/api/orders/{id}': {
      get: { operationId: 'getOrder', tags: ['orders'], parameters: [idParam('order'), ...common],
             responses: { 200: { description: 'the order', ...json({ $ref: '#/components/schemas/Order' }) },
                          404: { description: 'no such order', ...json(error) }, ...failures } },
    },
    '/api/orders/{id}/line_items': {
      get: { operationId: 'getOrderLineItems', tags: ['orders'], parameters: [idParam('order'), ...common],
             responses: { 200: { description: 'the order\'s line items', ...json({ type: 'object', required: ['order_id', 'line_items'], properties: {
               order_id: { type: 'integer' }, line_items: { type: 'array', items: { $ref: '#/components/schemas/LineItem' } } } }) },
               404: { description: 'no such order', ...json(error) }, ...failures } },
    },
  },
  components: {
    schemas: {
      Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
      Created: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } },
      NewUser: { type: 'object', required: ['email'], properties: { email: { type: 'string', minLength: 1 }, name: { type: ['string', 'null'] } } },
      User: { type: 'object', required: ['id', 'email'], properties: {
        id: { type: 'integer' }, email: { type: 'string' }, name: { type: ['string', 'null'] }, ...timestamps } },
      NewOrder: { type: 'object', required: ['user_id'], description: 'amount or amount_cents (both: they must agree)', properties: {
        user_id: { type: 'integer', minimum: 1 },
        amount: { type: ['string', 'number'], description: 'decimal, at most 2 places, 0.01-21474836.47' },
        amount_cents: { type: 'integer', minimum: 1, maximum: 2147483647 },
        currency: { type: 'string', pattern: '^[A-Z]{3}$', default: 'USD' },
        line_items: { type: 'array', maxItems: 50, items: { $ref: '#/components/schemas/NewLineItem' } } } },
      NewLineItem: { type: 'object', required: ['sku', 'quantity'], description: 'unit_price or unit_price_cents', properties: {
        sku: { type: 'string', minLength: 1, maxLength: 64 }, quantity: { type: 'integer', minimum: 1, maximum: 10000 },
        unit_price: { type: ['string', 'number'] }, unit_price_cents: { type: 'integer', minimum: 1, maximum: 2147483647 } } },
      Order: { type: 'object', required: ['id', 'user_id', 'amount_cents', 'status'], properties: {
        id: { type: 'integer' }, user_id: { type: 'integer' }, amount_cents: { type: 'integer' },
        status: { type: 'string', enum: ['pending', 'paid', 'shipped', 'cancelled', 'refunded'] }, ...timestamps,
        amount: { type: 'string', pattern: '^[0-9]+\\.[0-9]{2}$' }, currency: { type: 'string', pattern: '^[A-Z]{3}$' } } },
      LineItem: { type: 'object', required: ['id', 'order_id', 'sku', 'quantity', 'unit_price_cents'], properties: {
        id: { type: 'integer' }, order_id: { type: 'integer' }, sku: { type: 'string' }, quantity: { type: 'integer' }, unit_price_cents: { type: 'integer' },
        unit_price: { type: 'string' }, ...timestamps } },
    },
  },
} as const;
