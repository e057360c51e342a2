-- 20261126000001 down: remove the TypeScript shape; the Rails shape is left exactly as blue needs it.
--
-- Applied by cutover_kit.db.migrations inside ONE transaction with lock_timeout = 2s (by hand:
-- psql -1 -v ON_ERROR_STOP=1 -f <this file>). Drain green first: it needs these columns.
-- Nothing is lost: while the expand was live, the triggers wrote every change into the legacy
-- columns too, including rows green inserted without amount_cents/status. Dropping a column is
-- catalog-only. IF EXISTS everywhere: a rollback must not be blocked by drift in what it removes.

DROP TRIGGER IF EXISTS orders_sync_shapes ON orders;
DROP TRIGGER IF EXISTS line_items_sync_shapes ON line_items;
DROP TRIGGER IF EXISTS users_sync_shapes ON users;
DROP FUNCTION IF EXISTS orders_sync_shapes();
DROP FUNCTION IF EXISTS line_items_sync_shapes();
DROP FUNCTION IF EXISTS users_sync_shapes();

DROP INDEX IF EXISTS index_users_on_email_normalized;

ALTER TABLE orders
    DROP COLUMN IF EXISTS amount,
    DROP COLUMN IF EXISTS currency,
    DROP COLUMN IF EXISTS status_v2;
ALTER TABLE line_items
    DROP COLUMN IF EXISTS unit_price;
ALTER TABLE users
    DROP COLUMN IF EXISTS email_normalized;

DROP TYPE IF EXISTS order_status;

DELETE FROM schema_migrations WHERE version = '20261126000001';
