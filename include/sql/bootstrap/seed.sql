-- Deterministic seed: 1,000 users and 5,000 orders, set-based (generate_series, no loops).
-- Same input -> same rows on every run, so data-quality checks and checksums are reproducible.
-- Explicit ids, then the sequences are moved past them so application inserts never collide.
-- Idempotent: ON CONFLICT DO NOTHING lets the file be replayed.

INSERT INTO users (id, email, name, created_at, updated_at)
SELECT i,
       'user' || i || '@example.test',
       'User ' || i,
       timestamp '2024-01-01 00:00:00' + i * interval '1 hour',
       timestamp '2024-01-01 00:00:00' + i * interval '1 hour'
FROM generate_series(1, 1000) AS i
ON CONFLICT DO NOTHING;

INSERT INTO orders (id, user_id, amount_cents, status, created_at, updated_at)
SELECT i,
       1 + (i * 7919) % 1000,                  -- 7919 is prime: spreads orders over all users
       100 + (i * 37) % 99900,                  -- 1.00 .. 999.99
       (ARRAY['paid', 'paid', 'shipped', 'shipped', 'shipped', 'pending', 'cancelled', 'refunded'])[1 + i % 8],
       timestamp '2024-02-01 00:00:00' + i * interval '7 minutes',
       timestamp '2024-02-01 00:00:00' + i * interval '7 minutes' + (i % 3) * interval '1 day'
FROM generate_series(1, 5000) AS i
ON CONFLICT DO NOTHING;

SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));
SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders));
